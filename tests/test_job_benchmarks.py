"""job_benchmarks: Snakemake's benchmark TSVs read into the store, on hand-written files with known values, and
every rule's `benchmark:` path checked against the layout the parser reads."""

import re

import duckdb
import pandas as pd
import pytest
from conftest import REPO, TINY_CONFIG, snakemake, write_config
from test_store import fixture

from posttrain.plan import Layout
from posttrain.store.build import build
from posttrain.store.job_benchmarks import BenchmarkError, job_of, load

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
# (relative path, data line): the format Snakemake 9 writes (floats with 2 decimals, NA when it took no sample).
FILES = {
    "value_probe/sft-a/step-20.tsv": "46.21\t0:00:46\t2048.50\t4096.00\t2000.00\t2010.00\t1.00\t0.50\t180.30\t83.40\n",
    "value_probe/sft-a/step-0.tsv": "40.00\t0:00:40\t1900.00\t4000.00\t1800.00\t1850.00\t1.00\t0.50\t150.00\t60.00\n",
    "sft/sft-a.tsv": "600.75\t0:10:00\t6800.25\t9000.00\t6500.00\t6600.00\t10.00\t500.00\t195.50\t1170.00\n",
    "judge_eval/minilm/test.tsv": "12.5\t0:00:12\t800.00\t1200.00\t700.00\t720.00\t0.00\t0.10\t99.00\t12.00\n",
    "store.tsv": "0.3\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n",
}


def write(root, files=FILES):
    paths = []
    for rel, line in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + line)
        paths.append(str(path))
    return paths


def one(table, **where):
    """The one row matching `where` (None matches NULL)."""
    for column, value in where.items():
        table = table[table[column].isna() if value is None else table[column] == value]
    assert len(table) == 1, where
    return table.iloc[0]


def test_each_file_becomes_its_job_with_the_values_snakemake_wrote(tmp_path):
    root = tmp_path / "benchmarks"
    table, missing = load(write(root), root)
    assert missing == []
    probe = one(table, rule="value_probe", run="sft-a", step=20, target=None)
    assert (probe.wall_s, probe.max_rss_mb, probe.cpu_time_s, probe.mean_load) == (46.21, 2048.5, 83.4, 180.3)
    assert one(table, rule="value_probe", run="sft-a", step=0).wall_s == 40.0
    assert one(table, rule="sft", run="sft-a", step=None, target=None).max_rss_mb == 6800.25
    assert one(table, rule="judge_eval", run=None, step=None, target="minilm/test").cpu_time_s == 12.0
    store = one(table, rule="store", run=None, step=None, target=None)  # no sample taken: wall time only
    assert store.wall_s == 0.3 and pd.isna(store.max_rss_mb) and pd.isna(store.cpu_time_s)
    assert len(table) == len(FILES) and set(table.repeat) == {0}


def test_absent_files_are_returned_not_fatal(tmp_path):
    root = tmp_path / "benchmarks"
    paths = write(root, {"sft/a.tsv": FILES["sft/sft-a.tsv"]})
    table, missing = load([*paths, str(root / "sft" / "never-ran.tsv")], root)
    assert table.run.tolist() == ["a"] and missing == [str(root / "sft" / "never-ran.tsv")]


@pytest.mark.parametrize("content, message", [
    ("s\tmax_rss\n1.0\t2.0\n", "no column(s) cpu_time, mean_load"),
    (HEADER, "header only"),
    (HEADER + "1.0\t0:00:01\tlots\t1\t1\t1\t1\t1\t1\t1\n", "non-numeric"),
    (HEADER + "NA\t0:00:01\t1\t1\t1\t1\t1\t1\t1\t1\n", "wall time"),
    ("", "not a Snakemake benchmark TSV"),
])
def test_a_bad_file_is_one_error_naming_it(tmp_path, content, message):
    path = tmp_path / "sft" / "bad.tsv"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(BenchmarkError, match=re.escape(message)) as e:
        load([str(path)], tmp_path)
    assert str(path) in str(e.value)


def test_a_file_outside_the_folder_is_an_error(tmp_path):
    (tmp_path / "elsewhere.tsv").write_text(HEADER + FILES["store.tsv"])
    with pytest.raises(BenchmarkError, match="not under the benchmark folder"):
        load([str(tmp_path / "elsewhere.tsv")], tmp_path / "benchmarks")


def test_the_store_loads_them_and_sums_time_per_rule(tmp_path):
    manifests, stance = fixture(tmp_path)
    root = tmp_path / "benchmarks"
    paths = write(root)
    db = tmp_path / "study.duckdb"
    missing = build(db, manifests, stance, benchmarks=[*paths, str(root / "pref" / "x.tsv")], benchmark_root=root)
    assert missing == [str(root / "pref" / "x.tsv")]
    with duckdb.connect(str(db), read_only=True) as con:
        by_rule = con.sql("SELECT * FROM job_time_by_rule").df().set_index("rule")
        n = con.execute("SELECT count(*) FROM job_benchmarks").fetchone()[0]
    total = sum(float(line.split("\t")[0]) for line in FILES.values())
    assert n == len(FILES)
    assert by_rule.loc["value_probe", "jobs"] == 2
    assert by_rule.loc["value_probe", "wall_s"] == pytest.approx(46.21 + 40.0)
    assert by_rule.loc["sft", "share"] == pytest.approx(600.75 / total)
    assert by_rule.share.sum() == pytest.approx(1.0)
    assert by_rule.index[0] == "sft"  # ordered by time spent
    assert by_rule.loc["value_probe", "max_rss_mb"] == 2048.5


def test_an_empty_study_still_has_the_table_and_view(tmp_path):
    manifests, stance = fixture(tmp_path)
    build(tmp_path / "study.duckdb", manifests, stance)
    with duckdb.connect(str(tmp_path / "study.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM job_time_by_rule").fetchone()[0] == 0
        cols = [r[0] for r in con.execute("DESCRIBE job_benchmarks").fetchall()]
    assert cols[:4] == ["rule", "run", "step", "target"]


def rule_benchmarks():
    """(file, rule, benchmark path template) for every rule in workflow/rules/*.smk."""
    out = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.MULTILINE)[1:]:
            rule = re.match(r"rule (\w+):", block)[1]
            m = re.search(r'^    benchmark:\n\s+PATHS\.benchmark\("(\w+)"(?:, "([^"]+)")?\)', block, flags=re.MULTILINE)
            out.append((smk.name, rule, Layout().benchmark(m[1], m[2]) if m else None))
    return out


def test_every_rule_has_a_benchmark_file_the_store_can_place():
    rules = rule_benchmarks()
    assert len(rules) >= 17  # every rule of the workflow was found
    for smk, rule, template in rules:
        assert template is not None, f"{smk}: rule {rule} has no benchmark: line"
        assert template.startswith(f"results/benchmarks/{rule}"), (rule, template)
        wildcards = set(re.findall(r"{(\w+)}", template))
        job = job_of(template.format_map({w: f"<{w}>" if w != "step" else "7" for w in wildcards}),
                     "results/benchmarks")
        assert job["rule"] == rule
        assert (job["run"] == "<run>") == ("run" in wildcards), (rule, job)
        assert job["step"] == (7 if "step" in wildcards else 0 if "step-0" in template else None), (rule, job)
        assert (job["target"] is not None) == bool(wildcards - {"run", "step"}), (rule, job)


def dry_run_jobs(workdir, *args):
    """Every job of a dry run, as Snakemake plans it: rule, inputs, outputs, benchmark file, shell command."""
    result = snakemake(workdir, "-n", "-p", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = []
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", result.stdout, flags=re.MULTILINE)[1:]:
        job = {"rule": re.match(r"(?:local)?rule (\w+):", block)[1], "input": [], "output": [], "benchmark": None}
        for key in ("input", "output", "benchmark"):
            if m := re.search(rf"^    {key}: (.+)$", block, flags=re.MULTILINE):
                job[key] = m[1].split(", ") if key != "benchmark" else m[1]
        job["shell"] = m[1] if (m := re.search(r"^Shell command: (.+)$", block, flags=re.MULTILINE)) else ""
        jobs.append(job)
    return jobs


@pytest.mark.parametrize("study", ["default", "tiny", "cluster"])
def test_the_store_is_given_the_benchmark_file_of_every_job_above_it(tmp_path, study):
    """The store's --benchmarks list against the jobs Snakemake itself plans upstream of the store."""
    args = {"default": [], "tiny": ["--configfile", str(write_config(tmp_path / "tiny.yaml", TINY_CONFIG))],
            "cluster": ["--configfile", str(REPO / "config" / "cluster-study.yaml")]}[study]
    jobs = dry_run_jobs(tmp_path, *args)
    producer = {out: i for i, job in enumerate(jobs) for out in job["output"]}
    (store,) = [i for i, job in enumerate(jobs) if job["rule"] == "store"]
    upstream, todo = set(), [store]
    while todo:
        for path in jobs[todo.pop()]["input"]:
            if path in producer and producer[path] not in upstream:
                upstream.add(producer[path])
                todo.append(producer[path])
    given = jobs[store]["shell"].split(" --input benchmarks ", 1)[1].split(" > ", 1)[0].split()
    assert sorted(given) == sorted(jobs[i]["benchmark"] for i in upstream)
    assert all(job["benchmark"] for job in jobs if job["rule"] != "all")
