"""The study summary page (`posttrain report`) and the export (`posttrain export`) on a small real database built by
the store from hand-made probe rows: the page's tables against the database queried here, every figure on it, no
fetch of anything, and the page in a real browser (headless Chromium; skipped, with the reason, where there is none).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from posttrain.report import ReportError
from posttrain.report import figures as catalogue
from posttrain.report.page import build as build_page
from posttrain.store.build import build
from posttrain.store.export import ExportError, export

TOPICS = ["economy", "health"]
# (run, replicate of, seed, dataset, steps, p_support at the first and last step): one SFT run, a support-aligned
# control over two seeds that moves support up, and the stance of one answer per prompt and sample.
RUNS = [("sft", "sft", 0, "mix", (0, 5, 10), (0.30, 0.35)),
        ("dpo-up-seed0", "dpo-up", 0, "gap-up", (0, 4), (0.35, 0.70)),
        ("dpo-up-seed1", "dpo-up", 1, "gap-up", (0, 4), (0.35, 0.62))]


def _samples(run, steps, ends) -> pd.DataFrame:
    rows = []
    for i, step in enumerate(steps):
        base = ends[0] + (ends[1] - ends[0]) * i / (len(steps) - 1)
        for topic in TOPICS:
            for k in range(3):
                for mode, samples in (("generation", 2), ("forced_choice", 1)):
                    for s in range(samples):
                        p = min(max(base + 0.03 * (k - 1) + 0.01 * s, 0.01), 0.97)
                        rows.append({"run": run, "step": step, "topic": topic, "prompt_id": f"{topic}-{k}",
                                     "sample_id": s, "mode": mode, "prompt_set": "hand-made",
                                     "response": f"{run} answer {k}.{s} at step {step} <b>on {topic}</b>"
                                     if mode == "generation" else None,
                                     "judge": "head" if mode == "generation" else "next_token",
                                     "p_support": p, "p_neutral": (1 - p) * 0.7, "p_oppose": (1 - p) * 0.3,
                                     "label_mass": 0.9})
    return pd.DataFrame(rows).astype({"response": "string"})


def make_study(root: Path) -> Path:
    manifests, stance, complexity = [], [], []
    for run, replicate_of, seed, dataset, steps, ends in RUNS:
        pref = run != "sft"
        manifest = root / f"{run}.json"
        manifest.write_text(json.dumps({
            "run": run, "stage": "pref" if pref else "sft", "algorithm": "dpo" if pref else "sft", "model": "m",
            "dataset": dataset, "parent_run": "sft" if pref else None, "max_steps": steps[-1],
            "config": {"training": {"seed": seed}, **({"replicate_of": replicate_of} if pref else {})},
            "checkpoints": [{"step": s, "progress": s / steps[-1], "path": f"p/{run}/{s}"} for s in steps]}))
        manifests.append(str(manifest))
        path = root / f"{run}.parquet"
        _samples(run, steps, ends).to_parquet(path)
        stance.append(str(path))
        path = root / f"{run}-complexity.parquet"
        pd.DataFrame([{"run": run, "step": s, "task": "stance", "estimator": est, "family": "inference",
                       "setting": "", "format": "chat", "bits": bits + 10 * i, "payload_bits": bits - 100,
                       "driver_bits": 100.0, "score": score + 0.1 * i, "score_lo": score + 0.1 * i - 0.05,
                       "score_hi": score + 0.1 * i + 0.05, "target_run": run, "target_step": s}
                      for i, s in enumerate(steps) for est, bits, score in (("zero_shot", 500.0, 0.2),
                                                                            ("prompting", 4000.0, 0.45))
                      ]).to_parquet(path)
        complexity.append(str(path))
    judges = root / "judges"
    judges.mkdir()
    (judges / "eval-test.json").write_text(json.dumps({
        "judge": "head", "kind": "lm_head", "split": "test", "macro_f1": 0.8125, "accuracy": 0.8, "n": 6,
        "brier": 0.21, "ece": 0.04, "per_class": {s: {"recall": 0.8} for s in ("support", "neutral", "oppose")}}))
    predictions = pd.DataFrame([{"judge": "head", "id": f"{s}{k}", "prompt_id": f"q{k}", "topic": "economy",
                                 "stance": s, "split": "test", "p_support": 0.6 if s == "support" else 0.2,
                                 "p_neutral": 0.6 if s == "neutral" else 0.2, "p_oppose": 0.6 if s == "oppose" else 0.2}
                                for s in ("support", "neutral", "oppose") for k in range(2)])
    predictions["predicted"] = predictions["stance"]
    predictions.to_parquet(judges / "predictions-test.parquet")
    pairs = pd.DataFrame([{"dataset": "gap-up", "row": r, "side": side, "topic": TOPICS[r % 2], "judge": "head",
                           "p_support": (0.8 - 0.02 * r) if side == "chosen" else 0.1 + 0.01 * r,
                           "p_neutral": 0.1, "p_oppose": (0.1 + 0.02 * r) if side == "chosen" else 0.8 - 0.01 * r}
                          for r in range(8) for side in ("chosen", "rejected")])
    pairs.to_parquet(root / "gap-up.parquet")
    benchmarks = root / "benchmarks"
    (benchmarks / "sft").mkdir(parents=True)
    (benchmarks / "sft" / "sft.tsv").write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\t"
                                                "mean_load\tcpu_time\n612.40\t0:10:12\t3000.00\t5000.00\t2900.00\t"
                                                "2950.00\t1.00\t2.00\t190.00\t1160.00\n")
    db = root / "study.duckdb"
    build(db, manifests, stance, datasets_stance=[str(root / "gap-up.parquet")],
          judge_evals=[str(judges / "eval-test.json")], resamples=200, complexity=complexity,
          benchmarks=[str(benchmarks / "sft" / "sft.tsv")], benchmark_root=benchmarks,
          datasets={"mix": {"kind": "generated_sft"},
                    "gap-up": {"kind": "synthetic_value_gap", "direction": "support", "value_gap": 1.0}},
          controls=[{"run": "dpo-up", "test": "superiority", "direction": "up", "against": None, "margin": 0.1,
                     "power": 0.8}])
    return db


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """(database, page): the page built by `posttrain report` with no figure files, so it draws them all."""
    root = tmp_path_factory.mktemp("report")
    db = make_study(root)
    page = root / "summary.html"
    done = subprocess.run([sys.executable, "-m", "posttrain", "report", "--db", str(db), "--out", str(page)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"built {page}")
    return db, page


class Tables(HTMLParser):
    """Every <table class="finding"> of a page as {section: [rows of cell text]}; and every <img>'s src."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self._section, self._row, self._cell = {}, [], None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("class") == "finding":
            self._section = a["data-section"]
            self.tables.setdefault(self._section, [])
        elif tag == "tr" and self._section:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "img":
            self.images.append(a["src"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._section].append(self._row)
            self._row = None
        elif tag == "table":
            self._section = None


def parsed(page: Path) -> Tables:
    tables = Tables()
    tables.feed(page.read_text(encoding="utf-8"))
    return tables


def interval(m, lo, hi) -> str:
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def test_the_tables_hold_the_databases_numbers(study):
    db, page = study
    tables = parsed(page).tables
    with duckdb.connect(str(db), read_only=True) as con:
        drift = con.sql("SELECT run, mode, magnitude, magnitude_lo, magnitude_hi FROM drift_over_seeds "
                        "WHERE topic = '(all)' AND stance = 'balance'").df()
        pairs = con.sql("SELECT side, row, p_support FROM datasets_stance").df()
        f1 = con.execute("SELECT value FROM judge_eval WHERE metric = 'macro_f1' AND stance IS NULL").fetchone()[0]
        wall = con.execute("SELECT sum(wall_s) FROM job_benchmarks").fetchone()[0]
        c_last = con.execute("SELECT bits FROM task_complexity WHERE run = 'sft' AND step = 10 AND delta = 0.5"
                             ).fetchone()[0]
    # both read-outs, each run: the drift table's balance cell (generation first: the primary read-out)
    rows = [r for r in tables["drift"] if r[0] != "run"]
    assert len(rows) == 2 * 2  # runs sft and dpo-up (its two seeds in one row), two read-outs
    for mode, block in (("generation", rows[:2]), ("forced_choice", rows[2:])):
        for r in block:
            d = drift[(drift.run == r[0]) & (drift["mode"] == mode)].iloc[0]
            assert r[3].removesuffix(" *") == interval(d.magnitude, d.magnitude_lo, d.magnitude_hi)
    (control,) = [r for r in tables["controls"] if r[0] == "dpo-up"]
    assert control[1].startswith("superiority") and control[3] in ("holds", "fails", "inconclusive")
    assert ["head (the probe's)", "test", "6", f"{f1:.3f}", "0.210", "0.040"] in tables["judge"]
    gap = (pairs[pairs.side == "chosen"].set_index("row").p_support
           - pairs[pairs.side == "rejected"].set_index("row").p_support).mean()
    (gap_row,) = [r for r in tables["data"] if r[0] == "gap-up"]
    assert gap_row[1:3] == ["support", "8"] and gap_row[3].startswith(f"{gap:+.3f} [")
    assert tables["time"][-1][:3] == ["all", "1", f"{wall:,.0f}"]
    (sft,) = [r for r in tables["complexity"] if r[0] == "sft"]
    assert sft[tables["complexity"][0].index("δ = 0.5 (bits)")].startswith(f"– → {c_last:,.0f}")


def test_the_page_is_one_file_with_every_figure_and_no_fetch(study):
    db, page = study
    text = page.read_text(encoding="utf-8")
    with duckdb.connect(str(db), read_only=True) as con:
        expected = catalogue.drawable(con)
    images = parsed(page).images
    assert len(images) == len(expected) == 2 * len(RUNS) + 7  # stance and pareto per run, and 7 study figures
    assert all(src.startswith("data:image/png;base64,") for src in images)
    # nothing in the markup that the browser would load from elsewhere (what the scripts load: the browser test)
    markup = re.sub(r"<script\b.*?</script>", "", text, flags=re.DOTALL)
    assert not re.findall(r"""(?:src|href)\s*=\s*["'](?!data:|#)""", markup)
    assert "<link" not in markup and "@import" not in markup and "<script src" not in text
    assert "vegaEmbed(" in text and "&lt;b&gt;on economy" not in text  # answers ride as JSON, escaped
    assert "\\u003cb>on economy" in text


def test_a_bad_database_or_figure_gets_one_clear_error(tmp_path, study):
    db, _ = study
    with pytest.raises(ReportError, match="no database at .*missing.duckdb"):
        build_page(str(tmp_path / "missing.duckdb"), str(tmp_path / "out.html"))
    not_png = tmp_path / "stance-sft.png"
    not_png.write_text("not an image")
    with pytest.raises(ReportError, match=f"figure {re.escape(str(not_png))}: not a PNG file"):
        build_page(str(db), str(tmp_path / "out.html"), [str(not_png)])
    with pytest.raises(ReportError, match="holiday.png: not a figure of a study"):
        build_page(str(db), str(tmp_path / "out.html"), [str(tmp_path / "holiday.png")])
    done = subprocess.run([sys.executable, "-m", "posttrain", "report", "--db", str(tmp_path / "none.duckdb")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and done.stderr.strip().startswith("error: no database at")
    assert not (tmp_path / "out.html").exists()


def test_every_figure_of_the_workflow_has_a_category_and_a_caption():
    from posttrain.plan import PLOTS

    assert set(catalogue.FIGURES) == set(PLOTS)
    for rule in PLOTS:
        args = catalogue.snakemake_report(rule)
        assert args["category"] in catalogue.CATEGORIES
        assert Path(args["caption"]).is_file() and len(catalogue.caption(rule)) > 100
    assert {c for c, _, _ in catalogue.FIGURES.values()} == set(catalogue.CATEGORIES)
    assert catalogue.identify("results/plots/pareto-dpo-up-seed1.png") == ("pareto_plot", "dpo-up-seed1")


@pytest.mark.parametrize("to", ["csv", "parquet"])
def test_export_writes_every_table_and_view(tmp_path, study, to):
    db, _ = study
    out = tmp_path / "export"
    print(export(db, out, to))
    with duckdb.connect(str(db), read_only=True) as con:
        names = {n for (n,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        drift = con.sql("SELECT * FROM drift_over_seeds ORDER BY ALL").df()
        n_samples = con.execute("SELECT count(*) FROM stance_samples").fetchone()[0]
    assert {p.name for p in out.iterdir()} == {f"{n}.{to}" for n in names}
    read = pd.read_csv if to == "csv" else pd.read_parquet
    assert len(read(out / f"stance_samples.{to}")) == n_samples
    got = read(out / f"drift_over_seeds.{to}").sort_values(["run", "topic", "mode", "stance"]).reset_index(drop=True)
    pd.testing.assert_series_equal(got.magnitude, drift.sort_values(["run", "topic", "mode", "stance"])
                                   .reset_index(drop=True).magnitude)


def test_export_names_what_it_cannot_use(tmp_path, study):
    db, _ = study
    with pytest.raises(ExportError, match="no database at"):
        export(tmp_path / "none.duckdb", tmp_path / "out", "csv")
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="exists and is not a folder"):
        export(db, tmp_path / "file", "csv")
    done = subprocess.run([sys.executable, "-m", "posttrain", "export", "--to", "xlsx", str(tmp_path / "x"),
                           "--db", str(db)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "invalid choice: 'xlsx'" in done.stderr


# --- in a real browser ------------------------------------------------------------------------------------------

def chromium() -> tuple[str | None, str]:
    """(path of a Chromium binary, "") or (None, why there is none). As root on Debian, installs Debian's
    chromium when it is missing (as on a fresh CI machine), the way the Slurm tests install Slurm."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "playwright is not installed (pip install -e '.[test]')"
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path, ""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "no chromium on PATH, and installing Debian's needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, check=False)
        if command[1] == "install" and done.returncode == 0:
            break
    path = shutil.which("chromium")
    return (path, "") if path else (None, f"apt-get install chromium failed: {done.stderr[-500:]}")


def test_the_page_in_a_real_browser(study, tmp_path):
    path, reason = chromium()
    if path is None:
        print(f"\nbrowser test skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    db, page = study
    with duckdb.connect(str(db), read_only=True) as con:
        d = con.sql("SELECT magnitude, magnitude_lo, magnitude_hi FROM drift_over_seeds WHERE run = 'dpo-up' "
                    "AND topic = '(all)' AND mode = 'generation' AND stance = 'support'").df().iloc[0]
        answers = con.sql("SELECT response, p_support FROM stance_samples WHERE mode = 'generation' AND "
                          "run = 'dpo-up-seed1' AND step = 4 AND topic = 'health' ORDER BY prompt_id, sample_id"
                          ).df()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        problems = []
        tab.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
               else None)
        tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        tab.on("request", lambda r: problems.append(f"fetched {r.url}") if not r.url.startswith(("file:", "data:"))
               else None)
        tab.goto(page.as_uri())
        tab.wait_for_selector("#curves-chart svg .mark-line path", timeout=60_000)
        widths = tab.evaluate("[...document.images].map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) == 2 * len(RUNS) + 7 and min(widths) > 0
        # the drift table, as a reader sees it
        cell = tab.locator("table[data-section=drift] tr", has_text="dpo-up").first.locator("td").nth(4)  # p_support
        assert cell.inner_text().removesuffix(" *") == interval(d.magnitude, d.magnitude_lo, d.magnitude_hi)
        # the curves follow the drop-downs: another run, and its name in the chart's title
        tab.select_option("#curves-chart select[name=run]", "dpo-up-seed1")
        tab.wait_for_selector("#curves-chart svg text:has-text('dpo-up-seed1: ')", timeout=20_000)
        # the answers of a chosen run, checkpoint and topic beside the judge's probabilities
        tab.select_option("#answers-run", "dpo-up-seed1")
        tab.select_option("#answers-step", "4")
        tab.select_option("#answers-topic", "health")
        rows = tab.locator("#answers-table tbody tr")
        assert rows.count() == len(answers)
        first = rows.first.locator("td")
        assert first.nth(3).inner_text() == answers.response[0]  # the text itself, markup and all
        assert first.nth(5).inner_text() == f"{answers.p_support[0]:.3f}"
        tab.screenshot(path=str(tmp_path / "summary.png"), full_page=False)
        browser.close()
    assert problems == []
