"""Build the summary page: `build(db, out, figures)` writes one self-contained HTML file (tables, interactive
curves, sampled answers, figures as inline PNG) from a study database; nothing on it is fetched when it opens."""

from __future__ import annotations

import base64
import html
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import jinja2

from posttrain.io import write_text
from posttrain.plots import PlotError
from posttrain.report import ReportError, curves, samples, tables
from posttrain.report import figures as catalogue

TEMPLATE = Path(__file__).with_name("summary.html.j2")
PNG = b"\x89PNG\r\n\x1a\n"


def _caption_html(text: str) -> str:
    """A caption's rst as HTML: escaped, ``literal`` as <code>."""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", html.escape(text))


def _figure(path: Path, rule: str, run: str | None) -> dict:
    data = path.read_bytes() if path.is_file() else None
    if data is None:
        raise ReportError(f"figure {path}: no such file")
    if not data.startswith(PNG):
        raise ReportError(f"figure {path}: not a PNG file")
    category, _, title = catalogue.FIGURES[rule]
    return {"category": category, "title": title.format(run=run), "file": path.name,
            "caption": _caption_html(catalogue.caption(rule)), "src": "data:image/png;base64,"
            + base64.b64encode(data).decode("ascii"), "key": catalogue.order(rule, run)}


def _given(paths: list[str]) -> list[dict]:
    out = []
    for p in paths:
        try:
            rule, run = catalogue.identify(p)
        except ValueError as e:
            raise ReportError(str(e)) from None
        out.append(_figure(Path(p), rule, run))
    return out


def _drawn(db: str, con) -> tuple[list[dict], list[str]]:
    """Every figure the database holds rows for, drawn now; and why any could not be."""
    from posttrain.plots.figures import draw

    out, failed = [], []
    with tempfile.TemporaryDirectory(prefix="posttrain-report-") as folder:
        for rule, run in catalogue.drawable(con):
            path = Path(folder) / catalogue.file_name(rule, run)
            try:
                draw(catalogue.PLOTS[rule][1], db, str(path), run)
            except (PlotError, duckdb.Error) as e:
                failed.append(f"{path.name}: {str(e).strip().splitlines()[0]}")
                continue
            out.append(_figure(path, rule, run))
    return out, failed


def _facts(db: str, con) -> dict:
    counts = {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
              for name in ("runs", "checkpoints", "stance_samples")}
    return {"db": db, **counts, "built": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def build(db: str, out: str, figures: list[str] | None = None) -> str:
    """Write the page for database `db` to `out`. `figures`: the study's PNG files (the workflow's plots); None
    draws every figure the database holds rows for. Returns a one-line summary."""
    if not Path(db).is_file():
        raise ReportError(f"no database at {db} (build it with `snakemake --cores 2`)")
    try:
        con = duckdb.connect(db, read_only=True)
    except duckdb.Error as e:
        raise ReportError(f"{db}: not a DuckDB database ({e})") from None
    with con:
        found = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        missing = sorted({"runs", "checkpoints", "stance_samples", "drift_over_seeds"} - found)
        if missing:
            raise ReportError(f"{db}: not a study database (no {', '.join(missing)})")
        figs, failed = (_given(figures), []) if figures is not None else _drawn(db, con)
        context = {
            "facts": _facts(db, con),
            "sections": tables.sections(con),
            "curves": curves.spec(con),
            "samples": samples.data(con),
            "figures": sorted(figs, key=lambda f: f["key"]),
            "failed": failed,
            "categories": catalogue.CATEGORIES,
        }
    context["vega"] = curves.javascript() if context["curves"] else ""
    context["samples_json"] = samples.as_script(context["samples"]) if context["samples"] else "null"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    page = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(**context)
    write_text(out, page)
    return f"built {out}: {len(figs)} figures, {len(page) / 1e6:.1f} MB"
