"""Hostile input (issue 12, invariants 2, 3, 4 and 6): numbers that are not numbers, model
references that name any callable, inputs sized to exhaust time or memory, and user strings
that try to become markdown. Each case asserts the exit code, the message, and that nothing was
written outside the place the command writes to."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.finite import finite_record
from bench.gate.decision import GatePolicy
from bench.limits import load_yaml
from bench.measure import stats
from bench.metrics import value_of
from bench.modeldef import ModelError, load_model
from bench.report.format import md_cell, md_code, md_escape
from bench.runfolder import RunWriter
from tests.conftest import REPO, bench_cmd
from tests.fixtures.runs import record, steps, write_run

NAN, INF = float("nan"), float("inf")


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())  # rich may wrap long lines


def scenario(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ 2. every number is finite


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "tensorflow-*=nan"])
def test_gate_refuses_a_non_finite_threshold(tmp_path, capsys, value):
    # Every comparison with NaN is false: a tenfold slowdown would pass as INCONCLUSIVE.
    base = write_run(tmp_path, "base", [record(median_s=0.01)])
    cand = write_run(tmp_path, "cand", [record(median_s=0.1)])
    before = listing(tmp_path)
    code, out, err = run_cli(
        capsys, "gate", "--baseline", str(base), "--candidate", str(cand), f"--threshold={value}"
    )
    assert code == 2
    assert f"--threshold '{value}': expected a finite number" in err
    assert out == "" and listing(tmp_path) == before


def test_gate_refuses_nan_alpha_and_a_nan_policy_file(tmp_path, capsys):
    base = write_run(tmp_path, "base", [record(median_s=0.01)])
    code, _, err = run_cli(
        capsys, "gate", "--baseline", str(base), "--candidate", str(base), "--alpha", "nan"
    )
    assert code == 2 and "--alpha 'nan': expected a finite number" in err
    policy = scenario(tmp_path, "threshold: .nan\nrules:\n  - {cells: '*', threshold: .inf}\n")
    code, _, err = run_cli(
        capsys, "gate", "--baseline", str(base), "--candidate", str(base), "--policy", str(policy)
    )
    assert code == 2
    assert f"{policy}: threshold: Input should be a finite number" in err
    assert f"{policy}: rules.0.threshold: Input should be a finite number" in err
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        GatePolicy(threshold=NAN)


def test_scenario_floats_must_be_finite_and_prices_positive(tmp_path, capsys):
    path = scenario(
        tmp_path,
        "name: s\nmodel: mlp\n"
        "measure: {min_seconds: .inf, target_rel_ci: .nan, timeout_s: 1.0e+300}\n"
        "optimizer: {learning_rate: .nan}\n"
        "pricing: {gpu: -1, cpu: .inf, tpu: tpu-v5e}\n",
    )
    before = listing(tmp_path)
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    assert f"{path}:3: measure.min_seconds: got inf; expected a finite number" in err
    assert f"{path}:3: measure.target_rel_ci: got nan; expected a finite number" in err
    assert f"{path}:3: measure.timeout_s: got 1e+300; expected a number less than or" in err
    assert f"{path}:4: optimizer.learning_rate: got nan; expected a finite number" in err
    assert "pricing: got" in err and "(found gpu: -1, cpu: inf)" in err
    assert listing(tmp_path) == before


def test_where_refuses_a_non_finite_limit(tmp_path, capsys):
    run = write_run(tmp_path, "r", [record()])
    code, _, err = run_cli(capsys, "recommend", str(run), "--where", "p99_ms<=nan")
    assert code == 2 and "the limit must be a finite number" in err


def test_a_non_finite_measurement_makes_the_cell_invalid_and_is_written_as_null(tmp_path):
    rec = record(median_s=0.01)
    rec["metrics"]["mfu"] = {"value": INF, "unit": "fraction", "method": "m"}
    rec["samples"]["step_time_s"][2] = NAN
    fixed = finite_record(rec)
    assert fixed["status"] == "invalid"
    assert fixed["reason"] == (
        "non-finite measurement (NaN, infinity or beyond 1e+30), stored as null: "
        "metrics.mfu.value, samples.step_time_s[2]"
    )
    assert fixed["metrics"]["mfu"]["value"] is None and fixed["samples"]["step_time_s"][2] is None
    assert finite_record(record()) == record()  # a finite record is left as it is
    failed = finite_record({**rec, "status": "failed", "reason": "OOM"})
    assert (failed["status"], failed["reason"]) == ("failed", "OOM")
    assert "non_finite" in failed["flags"]
    # The writer itself refuses NaN: strict JSON in cells.jsonl and run.json.
    writer = RunWriter.create(tmp_path, {"scenario": {"name": "demo"}})
    try:
        with pytest.raises(ValueError, match="JSON compliant"):
            writer.append_cell(rec)
        writer.append_cell(fixed)
        json.loads((writer.path / "cells.jsonl").read_text(), parse_constant=pytest.fail)
        with pytest.raises(ValueError, match="JSON compliant"):
            writer.update(score=NAN)
    finally:
        writer.close()


def test_value_of_treats_nan_and_infinity_as_missing():
    assert value_of({"value": NAN}) is None and value_of({"value": -INF}) is None
    assert value_of({"value": True}) is None and value_of({"value": 3}) == 3.0


def nan_run(tmp_path: Path) -> Path:
    """A hand-edited run: the faster cell's throughput and one of its step times are NaN."""
    slow = record(batch_size=64, median_s=0.01)
    fast = record(batch_size=128, median_s=0.001)
    fast["metrics"]["examples_per_s"]["value"] = NAN
    fast["samples"]["step_time_s"][3] = NAN
    return write_run(tmp_path / "results", "edited", [slow, fast])


def test_a_cell_with_nan_metrics_is_never_recommended(tmp_path, capsys):
    run = nan_run(tmp_path)
    code, out, _ = run_cli(capsys, "recommend", str(run))
    assert code == 0
    assert "best  batch 64 on vm" in " ".join(out.split("\n"))
    assert "1 invalid" in out and "nan" not in out.lower()


def test_nan_in_samples_makes_the_cell_invalid_for_export_and_baseline_save(tmp_path, capsys):
    run = nan_run(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = run_cli(
        capsys, "export", str(run), "-o", str(out_dir / "e.json"), "--include-data"
    )
    assert code == 0, err
    doc = json.loads((out_dir / "e.json").read_text(), parse_constant=pytest.fail)
    # The invalid cell is not exported; the other is, whole.
    data = {b["name"]: b["stats"]["data"] for b in doc["benchmarks"]}
    assert list(data) == ["jax-cpu-predict-bs64-float32-synthetic"]
    assert len(data["jax-cpu-predict-bs64-float32-synthetic"]) == 30
    code, _, err = run_cli(capsys, "baseline", "save", str(run), "-o", str(out_dir / "b.json"))
    assert code == 0, err
    base = json.loads((out_dir / "b.json").read_text(), parse_constant=pytest.fail)
    cell = base["cells"]["jax-cpu-predict-bs128-float32-synthetic"]
    assert cell["status"] == "invalid" and cell["quantities"] == {}
    assert "samples.step_time_s[3]" in cell["reason"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["b.json", "e.json"]
    assert sorted(p.name for p in run.iterdir()) == ["cells.jsonl", "run.json"]  # untouched


# ------------------------------------------------------------------ 3. model references


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("sys:exit", "sys.exit is a builtin function, not a model defined in module sys"),
        ("os:fork", "os.fork is a builtin function, not a model defined in module os"),
        ("builtins:print", "builtins.print is a builtin function, not a model defined"),
        (
            "tests.fixtures.toy_model:Any",
            "tests.fixtures.toy_model.Any is a class defined in module typing, not a model "
            "defined in module tests.fixtures.toy_model",
        ),
        ("tests.fixtures.toy_model:DESCRIPTION", "is a str value, not a model defined in module"),
        ("antigravity:x", "antigravity is a standard library module, not a module of models"),
    ],
)
def test_a_model_reference_never_calls_what_it_has_not_checked(reference, message):
    with pytest.raises(ModelError, match=message.replace(".", r"\.")):
        load_model(reference)


def test_stdlib_functions_and_factories_with_arguments_are_refused(tmp_path, monkeypatch):
    import tempfile  # imported here, so the reference is judged by what it names

    made = set(Path(tempfile.gettempdir()).iterdir())
    with pytest.raises(
        ModelError, match=r"tempfile\.mkdtemp is a function of the standard library"
    ):
        load_model("tempfile:mkdtemp")
    assert set(Path(tempfile.gettempdir()).iterdir()) == made  # nothing was called
    (tmp_path / "hostile_models.py").write_text(
        "from os.path import join as reexported\n"
        "def needs(x):\n    raise SystemExit(3)\n"
        "def exits():\n    raise SystemExit(0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError, match="defined in module posixpath, not a model defined"):
        load_model("hostile_models:reexported")
    with pytest.raises(ModelError, match="is a function that takes arguments"):
        load_model("hostile_models:needs")
    with pytest.raises(ModelError, match="model factory 'hostile_models:exits' raised SystemExit"):
        load_model("hostile_models:exits")


def test_validate_of_sys_exit_exits_2_and_still_checks_the_other_files(tmp_path):
    bad = scenario(tmp_path, "name: a\nmodel: sys:exit\n", "a.yaml")
    other = scenario(tmp_path, "name: b\nmodel: mlp\nmeasure: {min_steps: 1}\n", "b.yaml")
    before = listing(tmp_path)
    done = subprocess.run(
        bench_cmd("validate", str(bad), str(other)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    err = " ".join(done.stderr.split())
    assert (
        f"{bad}:2: model: sys.exit is a builtin function, not a model defined in module sys" in err
    )
    assert f"{other}:3: measure.min_steps: got 1" in err
    assert listing(tmp_path) == before


# ------------------------------------------------------------------ 4. bounded work


def alias_bomb() -> str:
    text = (
        'name: bomb\nmodel: mlp\nlol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    )
    previous = "a"
    for name in "bcdefghi":  # 9 ** 9 values once expanded
        text += f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
        previous = name
    return text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (alias_bomb(), "invalid YAML: the document expands to more than 100,000 values"),
        ("name: x\nmodel_args: &a {inner: *a}\n", "invalid YAML: alias *a refers to a value"),
        ("name: x\nmodel_args: " + "[" * 500 + "]" * 500 + "\n", "nested more than 64 levels"),
    ],
)
def test_yaml_bombs_are_refused_quickly(tmp_path, text, message):
    path = scenario(tmp_path, text)
    before = listing(tmp_path)
    started = time.monotonic()
    done = subprocess.run(
        bench_cmd("validate", str(path)), capture_output=True, text=True, timeout=20, cwd=REPO
    )
    assert time.monotonic() - started < 20  # generous: the refusal itself takes milliseconds
    assert done.returncode == 2
    assert f"{path}:" in done.stderr and message in " ".join(done.stderr.split())
    assert listing(tmp_path) == before


def test_policy_files_and_stored_scenarios_are_bounded_too(tmp_path, capsys):
    base = write_run(tmp_path, "base", [record()])
    policy = scenario(tmp_path, alias_bomb().replace("name: bomb\nmodel: mlp\n", ""), "p.yaml")
    code, _, err = run_cli(
        capsys, "gate", "--baseline", str(base), "--candidate", str(base), "--policy", str(policy)
    )
    assert code == 2 and "the document expands to more than 100,000 values" in err
    with pytest.raises(Exception, match="expands to more than"):
        load_yaml(alias_bomb())


def test_a_huge_matrix_is_refused_before_it_is_expanded(tmp_path, capsys, monkeypatch):
    sizes = ",".join(str(i) for i in range(1, 3001))
    path = scenario(
        tmp_path,
        f"name: huge\nmodel: mlp\nmatrix:\n  batch_size: [{sizes}]\n  steps_per_call: [{sizes}]\n"
        "  framework: [jax, tensorflow]\n",
    )
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    assert (
        f"{path}:3: matrix: 18,000,000 cells (2 framework x 3000 batch_size x 3000 "
        "steps_per_call); expected at most 100,000 (set BENCH_MAX_CELLS to change the limit)"
    ) in err
    small = scenario(tmp_path, "name: s\nmodel: mlp\nmatrix: {batch_size: [1, 2, 4]}\n", "t.yaml")
    monkeypatch.setenv("BENCH_MAX_CELLS", "2")
    code, _, err = run_cli(capsys, "validate", str(small))
    assert code == 2 and "3 cells (3 batch_size); expected at most 2" in err
    monkeypatch.setenv("BENCH_MAX_CELLS", "lots")
    code, _, err = run_cli(capsys, "validate", str(small))
    assert (
        code == 2
        and "BENCH_MAX_CELLS='lots': expected a whole number of cells from 1 to 10,000,000" in err
    )


@pytest.mark.heavy
def test_compare_of_100k_samples_per_cell_uses_bounded_memory(tmp_path, capsys):
    # 2000 resamples x 100,000 samples of int64 indices would be 1.6 GB.
    runs = []
    for name, median in (("a", 0.010), ("b", 0.011)):
        rec = record(median_s=median)
        rec["samples"]["step_time_s"] = steps(median, n=100_000, seed=len(runs))
        runs.append(write_run(tmp_path, name, [rec]))
    tracemalloc.start()
    try:
        code, out, err = run_cli(capsys, "compare", *map(str, runs), "--format", "json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0, err
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert '"verdict"' in out or "ratio" in out


def test_bootstrap_blocks_keep_the_intervals_and_large_samples_skip_resampling(monkeypatch):
    x = np.random.default_rng(1).lognormal(0, 0.3, 3000)
    y = x * 1.05
    expected = stats.ratio_of_medians_ci(x, y, seed=3)
    summary = stats.summarize(x)
    monkeypatch.setattr(stats, "_BOOT_BLOCK", 7000)  # many small blocks, the same draws
    assert stats.ratio_of_medians_ci(x, y, seed=3) == expected
    assert stats.summarize(x) == summary

    def never(*args, **kwargs):
        raise AssertionError("resample indices drawn for a large sample")

    monkeypatch.setattr(stats, "_boot_blocks", never)
    big = np.random.default_rng(2).lognormal(0, 0.3, stats.RESAMPLE_MAX + 1)
    ratio, lo, hi = stats.ratio_of_medians_ci(big, big * 1.05)
    assert ratio == pytest.approx(1.05) and lo < ratio < hi and hi / lo < 1.05  # narrow
    s = stats.summarize(big)
    assert s["ci95_median"][0] < s["median"] < s["ci95_median"][1]
    half = 1.959963984540054 * s["stdev"] / math.sqrt(s["n"])
    assert s["ci95_mean"] == pytest.approx([s["mean"] - half, s["mean"] + half])


# ------------------------------------------------------------------ 6. markdown is escaped

UNESCAPED_HTML = re.compile(r"(?<!\\)<(?!br>|/?details>|/?summary>)")
HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(1)> `code` [x](http://e) &lt;"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<script>alert(1)</script>", r"\<script\>alert(1)\</script\>"),
        ("<img src=x onerror=alert(1)>", r"\<img src=x onerror=alert(1)\>"),
        ("`code`", r"\`code\`"),
        ("[x](http://e)", r"\[x\](http://e)"),
        ("![i](http://e)", r"![i\](http://e)"),  # "](" escaped: no image, no link
        ("# heading", r"\# heading"),
        ("> quote", r"\> quote"),
        ("- item", r"\- item"),
        ("1. item", r"1\. item"),
        ("a|b\nc", r"a\|b c"),
        ("\\<b>", r"\\\<b\>"),
        ("&lt;b&gt;", r"\&lt;b\&gt;"),
        ("[0.98, 1.02]", r"\[0.98, 1.02]"),
        ("-", "-"),
    ],
)
def test_md_escape_shows_text_as_text(text, shown):
    assert md_escape(text) == shown


def test_md_cell_and_code_spans():
    assert md_cell("# [0.98, 1.02] x|y") == r"# [0.98, 1.02] x\|y"  # no block markers in cells
    assert md_code("a``b") == "```a``b```" and md_code("`x") == "`` `x ``"
    assert md_code("a|b", in_table=True) == r"`a\|b`"


def hostile_run(root: Path) -> Path:
    rec = record(median_s=0.01, status="failed", reason=HOSTILE)
    other = record(median_s=0.02, batch_size=8)
    return write_run(root, "hostile", [rec, other], hostname="# <b>host</b>")


def test_report_markdown_escapes_hostile_strings(tmp_path, capsys):
    run = hostile_run(tmp_path / "results")
    out = tmp_path / "out" / "r.md"
    code, _, err = run_cli(capsys, "report", str(run), "--format", "md", "-o", str(out))
    assert code == 0, err
    text = out.read_text()
    assert not UNESCAPED_HTML.search(text)
    assert r"\<script\>alert(1)\</script\>" in text and r"\<b\>host\</b\>" in text
    assert r"[x\](http://e)" in text and r"\`code\`" in text  # "](": no link
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"r.md", "r_files"}


def test_compare_markdown_escapes_hostile_strings(tmp_path, capsys):
    run = hostile_run(tmp_path)
    code, out, _ = run_cli(capsys, "compare", str(run), str(run), "--format", "md")
    assert code == 0
    assert r"\<script\>" in out and not UNESCAPED_HTML.search(out)


def test_gate_markdown_and_step_summary_escape_hostile_strings(tmp_path, capsys):
    sides = []
    for name, seed, status in (("base", 1, "ok"), ("cand", 2, "failed")):
        bad = record(median_s=0.01, seed=seed, status=status, reason="<img src=x onerror=1>")
        bad["cell_id"] = "x`<script>|"
        fine = record(median_s=0.01, seed=seed, batch_size=8)
        sides.append(write_run(tmp_path, name, [bad, fine]))
    base, cand = sides
    summary = tmp_path / "summary.md"
    code, out, err = run_cli(
        capsys,
        "gate",
        "--baseline",
        str(base),
        "--candidate",
        str(cand),
        "--format",
        "md",
        "--step-summary",
        str(summary),
    )
    assert code == 0, err
    assert summary.read_text() == out
    assert "``x`<script>\\|``" in out  # a code span shows it as text
    assert r"- ``x`<script>|``: candidate: cell failed: \<img src=x onerror=1\>" in out
    rest = out.replace("``x`<script>\\|``", "").replace("``x`<script>|``", "")
    assert not UNESCAPED_HTML.search(rest)
