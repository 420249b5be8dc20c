"""The study summary page (`posttrain report`): one self-contained HTML file built from a study database.

    figures.py   which figures a study has, their categories and captions (also the Snakemake report's)
    tables.py    the findings as tables with intervals (drift, controls and judge from posttrain.store.findings)
    curves.py    the interactive stance curves (Vega-Lite through Altair, its JavaScript inlined)
    samples.py   the sampled answers beside the judge's verdict, per run, checkpoint and topic
    page.py      the page itself (template: summary.html.j2)
"""


class ReportError(ValueError):
    """A database or figure the page cannot be built from; the message names it."""
