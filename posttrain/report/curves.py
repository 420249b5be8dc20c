"""The interactive stance curves of the summary page: a Vega-Lite chart (built with Altair) of every run's
stance per topic over training with its bootstrap band, filtered by run, topic and read-out with drop-downs.

The data rides inside the spec and the Vega, Vega-Lite and vega-embed JavaScript comes from vl-convert-python's
bundle, which ships inside the wheel: the page fetches nothing, at build time or when opened.
"""

from __future__ import annotations

import json

import altair as alt
import pandas as pd

from posttrain.stances import STANCES

COLOURS = {"support": "#2ca02c", "neutral": "#7f7f7f", "oppose": "#d62728"}
ALL_TOPICS = "(mean over topics)"


def data(con) -> pd.DataFrame:
    """stance_curve per topic and stance_overall as the topic ALL_TOPICS, for the three stances."""
    frame = con.execute("""
        SELECT run, step, progress, topic, mode, stance, value, lo, hi FROM stance_curve WHERE stance <> 'balance'
        UNION ALL
        SELECT run, step, progress, ?, mode, stance, value, lo, hi FROM stance_overall WHERE stance <> 'balance'
        ORDER BY run, topic, mode, stance, step""", [ALL_TOPICS]).df()
    frame["mode"] = frame["mode"].str.replace("_", " ")
    return frame.round({"progress": 4, "value": 4, "lo": 4, "hi": 4})


def chart(frame: pd.DataFrame) -> alt.LayerChart:
    runs = sorted(frame.run.unique())
    topics = [ALL_TOPICS, *sorted(t for t in frame.topic.unique() if t != ALL_TOPICS)]
    modes = sorted(frame["mode"].unique(), key=lambda m: m != "generation")  # the primary read-out first
    run = alt.param(name="run", value=runs[0], bind=alt.binding_select(options=runs, name="run "))
    topic = alt.param(name="topic", value=ALL_TOPICS, bind=alt.binding_select(options=topics, name="topic "))
    mode = alt.param(name="readout", value=modes[0], bind=alt.binding_select(options=modes, name="read-out "))
    colour = alt.Color("stance:N", scale=alt.Scale(domain=list(STANCES), range=[COLOURS[s] for s in STANCES]),
                       title="stance")
    base = alt.Chart(frame).transform_filter(
        (alt.datum.run == run) & (alt.datum.topic == topic) & (alt.datum.mode == mode))
    x = alt.X("step:Q", title="training step", axis=alt.Axis(tickMinStep=1))
    band = base.mark_area(opacity=0.2).encode(x=x, y="lo:Q", y2="hi:Q", color=colour)
    tooltip = ["run", "topic", "mode", "stance", "step", "progress",
               alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("lo:Q", format=".3f"),
               alt.Tooltip("hi:Q", format=".3f")]
    line = base.mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title="p(stance)", scale=alt.Scale(domain=[0, 1])), color=colour, tooltip=tooltip)
    title = alt.Title(alt.ExprRef("run + ': ' + topic + ', read by ' + readout"), anchor="start")
    return alt.layer(band, line).add_params(run, topic, mode).properties(width=760, height=340, title=title)


def spec(con) -> str | None:
    """The chart's Vega-Lite spec as JSON, safe inside a <script> element; None without stance rows."""
    frame = data(con)
    if frame.empty:
        return None
    return json.dumps(chart(frame).to_dict()).replace("<", "\\u003c")


def javascript() -> str:
    """Vega, Vega-Lite and vega-embed as one script (defines `vegaEmbed`), for the Vega-Lite version Altair writes."""
    import vl_convert

    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]  # "v6.4.1" -> vl-convert's "v6_4"
    return vl_convert.javascript_bundle(vl_version=f"v{major}_{minor}")
