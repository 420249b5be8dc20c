"""Figures from the study database (seaborn PNGs; posttrain.plots.figures)."""


class PlotError(ValueError):
    """A figure with nothing to draw (no rows for the run, no preference runs); the message says which."""
