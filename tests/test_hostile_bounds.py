"""Every input is bounded before work starts (issue 20, invariant 4).

Each count, size, rate, thread number and duration a scenario, a command flag or a file holds
is tried with a value far past its bound (10**400 where it is an integer, 1e300 where it is a
float, a non-integer where it is counted): the command exits 2 with one line naming the field,
before any work, writing nothing. Records are capped at what bench writes, and the gate and
``baseline save`` keep ``--max-samples`` per run whatever a baseline file holds. Everything
runs in-process on small constructed files; nothing here starts a worker.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.cli import main
from bench.limits import MAX_BATCH
from bench.runfolder import CELLS_FILE
from tests.fixtures.runs import record, write_run

HUGE = "1" + "0" * 400  # 10**400: an integer past any bound, and past float's range
SCENARIO = """\
name: bounds
model: mlp
model_args: {hidden: [8]}
matrix: {workload: [predict], batch_size: [8]}
measure: {warmup_steps: 1, min_steps: 3, min_seconds: 0, max_seconds: 1, target_rel_ci: 0.5}
"""


def listing(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = (Path(dirpath) / name).lstat()
            found[str(Path(dirpath, name).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``bench ARGV`` in-process: the exit code (argparse's usage errors included) and stderr
    with rich's wrapping undone."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, " ".join(capsys.readouterr().err.split())


def refused(capsys, tmp_path: Path, argv: list[str], field: str, expected: str) -> None:
    before = listing(tmp_path)
    code, err = run(capsys, *argv)
    assert code == 2, err
    assert field in err and expected in err, err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert listing(tmp_path) == before  # nothing written, nothing changed


# -- scenario fields: (--set override, field named, what the message expects) ----------------

LE = "less than or equal to"
SCENARIO_FIELDS = {
    "batch_size": (f"matrix.batch_size=[{HUGE}]", "matrix.batch_size[0]", f"{LE} {MAX_BATCH}"),
    "batch_size true": ("matrix.batch_size=[true]", "matrix.batch_size[0]", "valid integer"),
    "batch_size '8'": ("matrix.batch_size=['8']", "matrix.batch_size[0]", "valid integer"),
    "batch_size 8.0": ("matrix.batch_size=[8.0]", "matrix.batch_size[0]", "valid integer"),
    "steps_per_call": (f"steps_per_call={HUGE}", "steps_per_call", LE),
    "replicas": (f"replicas={HUGE}", "replicas", LE),
    "threads": (f"threads={HUGE}", "threads", LE),
    "max_batch_size": (f"max_batch_size={HUGE}", "max_batch_size", LE),
    "batch_timeout_ms": ("batch_timeout_ms=1.0e+300", "batch_timeout_ms", LE),
    "target_qps": ("target_qps=1.0e+300", "target_qps", LE),
    "warmup_steps": (f"measure.warmup_steps={HUGE}", "measure.warmup_steps", LE),
    "min_steps": (f"measure.min_steps={HUGE}", "measure.min_steps", LE),
    "min_steps true": ("measure.min_steps=true", "measure.min_steps", "valid integer"),
    "min_seconds": ("measure.min_seconds=1.0e+300", "measure.min_seconds", LE),
    "max_seconds": ("measure.max_seconds=1.0e+300", "measure.max_seconds", LE),
    "timeout_s": ("measure.timeout_s=1.0e+300", "measure.timeout_s", LE),
    "repeats": (f"measure.repeats={HUGE}", "measure.repeats", LE),
    "parity_examples": (f"measure.parity_examples={HUGE}", "measure.parity_examples", LE),
    "profile.steps": (f"measure.profile.steps={HUGE}", "measure.profile.steps", LE),
    "serve.min_queries": (f"measure.serve.min_queries={HUGE}", "serve.min_queries", LE),
    "serve.warmup_queries": (f"measure.serve.warmup_queries={HUGE}", "warmup_queries", LE),
    "serve.warmup_queries '5'": ("measure.serve.warmup_queries='5'", "warmup_queries", "integer"),
    "serve.max_seconds": ("measure.serve.max_seconds=1.0e+300", "serve.max_seconds", LE),
    "serve.drain_s": ("measure.serve.drain_s=1.0e+300", "serve.drain_s", LE),
    "serve.low_qps": ("measure.serve.low_qps=1.0e+300", "serve.low_qps", LE),
    "serve.retries": (f"measure.serve.retries={HUGE}", "serve.retries", LE),
    "data.examples": (f"data.examples={HUGE}", "data.examples", LE),
    "data.shards": (f"data.shards={HUGE}", "data.shards", LE),
    "data.shards true": ("data.shards=true", "data.shards", "valid integer"),
    "data.stored_image_size": (f"data.stored_image_size={HUGE}", "stored_image_size", LE),
    "data.jpeg_quality": (f"data.jpeg_quality={HUGE}", "data.jpeg_quality", LE),
    "pipeline cache_max_mb": (
        f"pipeline={{preset: tuned, cache_max_mb: {HUGE}}}",
        "pipeline",
        "cache_max_mb",
    ),
    "seed": (f"seed={HUGE}", "seed", LE),
    "learning_rate": ("optimizer.learning_rate=1.0e+300", "optimizer.learning_rate", LE),
    "weight_decay": ("optimizer.weight_decay=1.0e+300", "optimizer.weight_decay", LE),
    "price": ("pricing={cpu: 1.0e+300}", "pricing", "at most"),
    "tpu.poll_s": ("tpu={name: n, poll_s: 1.0e+300}", "tpu.poll_s", LE),
    "slo.latency_ms": ("slo={latency_ms: 1.0e+300}", "slo.latency_ms", LE),
    "model_args.hidden": (f"model_args.hidden=[{HUGE}]", "model_args.hidden[0]", LE),
    "model_args.vocab_size": (f"model_args.vocab_size={HUGE}", "model_args.vocab_size", LE),
    "a YAML int of 5,000 digits": (f"seed={'9' * 5000}", "not valid YAML", "thousands of digits"),
}


@pytest.mark.parametrize("case", list(SCENARIO_FIELDS))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_every_scenario_number_is_bounded_at_validation(tmp_path, capsys, case, command):
    setting, field, expected = SCENARIO_FIELDS[case]
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    argv = [command, str(path), "--set", setting]
    if command == "run":
        argv += ["--results-dir", str(tmp_path / "results")]
    refused(capsys, tmp_path, argv, field, expected)


def test_a_yaml_int_of_5000_digits_in_the_file_is_invalid_yaml(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SCENARIO + f"seed: {'9' * 5000}\n")
    refused(capsys, tmp_path, ["validate", str(tmp_path / "s.yaml")], "s.yaml", "invalid YAML")


def test_a_matrix_bound_from_the_environment_is_bounded_too(tmp_path, capsys, monkeypatch):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    monkeypatch.setenv("BENCH_MAX_CELLS", HUGE)
    refused(capsys, tmp_path, ["validate", str(tmp_path / "s.yaml")], "BENCH_MAX_CELLS", "to 10")


# -- command flags ---------------------------------------------------------------------------

FLAGS = {
    "run --profile-steps": (["run", "{s}", "--profile-steps", HUGE], "--profile-steps"),
    "run --num-processes": (
        ["run", "{s}", "--num-processes", HUGE, "--process-id", "0", "--coordinator", "h:1"],
        "--num-processes",
    ),
    "run --process-id": (["run", "{s}", "--process-id", HUGE], "--process-id"),
    "gate --max-samples": (
        ["gate", "--baseline", "{r}", "--candidate", "{r}", "--max-samples", HUGE],
        "--max-samples",
    ),
    "gate --min-samples": (
        ["gate", "--baseline", "{r}", "--candidate", "{r}", "--min-samples", "10" + "0" * 12],
        "min_samples",
    ),
    "gate --threshold": (
        ["gate", "--baseline", "{r}", "--candidate", "{r}", "--threshold", "1e6"],
        "threshold",
    ),
    "baseline save --max-samples": (
        ["baseline", "save", "{r}", "-o", "{o}", "--max-samples", HUGE],
        "--max-samples",
    ),
    "selfcheck --steps": (["selfcheck", "--steps", HUGE], "--steps"),
    "selfcheck --trials": (["selfcheck", "--trials", HUGE], "--trials"),
    "selfcheck --size": (["selfcheck", "--size", HUGE], "--size"),
    "data make --examples": (["data", "make", "mlp", "--examples", HUGE], "--examples"),
    "data make --shards": (["data", "make", "mlp", "--shards", HUGE], "--shards"),
    "data make --stored-image-size": (
        ["data", "make", "mlp", "--stored-image-size", HUGE],
        "--stored-image-size",
    ),
    "data make --jpeg-quality": (["data", "make", "mlp", "--jpeg-quality", HUGE], "--jpeg-quality"),
    "data make --seed": (["data", "make", "mlp", "--seed", HUGE], "--seed"),
    "pipeline compile --retries": (
        ["pipeline", "compile", "{s}", "--image", "i", "--retries", HUGE],
        "--retries",
    ),
}


@pytest.mark.parametrize("case", list(FLAGS))
def test_every_numeric_flag_is_bounded(tmp_path, capsys, case):
    argv, flag = FLAGS[case]
    (tmp_path / "s.yaml").write_text(SCENARIO)
    good = write_run(tmp_path / "results", "r", [record(batch_size=8)])
    names = {"{s}": str(tmp_path / "s.yaml"), "{r}": str(good), "{o}": str(tmp_path / "b.json")}
    argv = [names.get(a, a) for a in argv]
    before = listing(tmp_path)
    code, err = run(capsys, *argv)
    assert code == 2, err
    assert flag in err and ("expected" in err or "must be" in err), err
    assert "Traceback" not in err and "unexpected" not in err and "errors.pydantic" not in err
    assert listing(tmp_path) == before


# -- files -----------------------------------------------------------------------------------

MACHINES = {
    "memory": ("cpu: {memory: " + HUGE + "Gi}", "cpu[0].memory", "64Ti"),
    "count": ("gpu: {accelerator: NVIDIA_L4, count: " + HUGE + "}", "gpu[0].count", LE),
    "count true": ("gpu: {accelerator: NVIDIA_L4, count: true}", "gpu[0].count", "integer"),
    "cpu": ("cpu: {cpu: 1.0e+300}", "cpu[0].cpu", LE),
}


@pytest.mark.parametrize("case", list(MACHINES))
def test_every_number_of_a_machines_file_is_bounded(tmp_path, capsys, case):
    from bench.pipeline.machines import MachinesError, load_machines

    text, field, expected = MACHINES[case]
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(MachinesError) as caught:
        load_machines(tmp_path / "m.yaml")
    message = str(caught.value)
    assert message.count("\n") == 0 and f"m.yaml: {field}" in message and expected in message


POLICIES = {
    "min_samples": (f"min_samples: {HUGE}", "min_samples", LE),
    "min_samples true": ("min_samples: true", "min_samples", "integer"),
    "threshold": ("threshold: 1.0e+300", "threshold", LE),
    "rule min_samples": (f"rules: [{{cells: '*', min_samples: {HUGE}}}]", "min_samples", LE),
}


@pytest.mark.parametrize("case", list(POLICIES))
def test_every_number_of_a_policy_file_is_bounded(tmp_path, capsys, case):
    text, field, expected = POLICIES[case]
    good = write_run(tmp_path / "results", "r", [record(batch_size=8)])
    (tmp_path / "p.yaml").write_text(text)
    argv = ["gate", "--baseline", str(good), "--candidate", str(good), "--policy"]
    refused(capsys, tmp_path, [*argv, str(tmp_path / "p.yaml")], field, expected)


def _baseline_file(tmp_path: Path, samples: int, **change: object) -> Path:
    """A baseline saved from a real-shaped run, then edited: ``samples`` step times per cell
    (a file bench would never write past its --max-samples), and ``change`` at the top."""
    good = write_run(tmp_path / "results", "r", [record(batch_size=8, n=samples, median_s=0.01)])
    out = tmp_path / "b.json"
    assert main(["baseline", "save", str(good), "-o", str(out), "--max-samples", str(samples)]) == 0
    doc = json.loads(out.read_text())
    doc.update(change)
    out.write_text(json.dumps(doc))
    return out


def test_the_gate_and_baseline_save_keep_max_samples_whatever_the_file_holds(tmp_path, capsys):
    big = _baseline_file(tmp_path, 20_000)
    capsys.readouterr()
    again = tmp_path / "again.json"
    assert main(["baseline", "save", str(big), "-o", str(again), "--max-samples", "50"]) == 0
    doc = json.loads(again.read_text())
    (cell,) = doc["cells"].values()
    assert doc["max_samples"] == 50 and len(cell["quantities"]["step_time_s"]["samples"]) == 50
    code, err = run(capsys, "gate", "--baseline", str(big), "--candidate", str(big),
                    "--max-samples", "50", "--format", "json")  # fmt: skip
    assert code == 0, err
    assert "thinned to --max-samples 50 per run" in err


@pytest.mark.parametrize(
    ("change", "field"),
    [({"max_samples": int(HUGE)}, "max_samples"), ({"format_version": int(HUGE)}, "format")],
)
def test_a_baseline_file_with_huge_numbers_is_refused(tmp_path, capsys, change, field):
    doc_path = _baseline_file(tmp_path, 30)
    text = doc_path.read_text()
    doc = json.loads(text)
    doc.update(change)
    doc_path.write_text(json.dumps(doc))
    capsys.readouterr()
    before = listing(tmp_path)
    code, err = run(capsys, "gate", "--baseline", str(doc_path), "--candidate", str(doc_path))
    assert code == 2 and field in err and "b.json" in err, err
    assert "Traceback" not in err and "unexpected" not in err
    assert listing(tmp_path) == before


# -- records: capped at what bench writes ----------------------------------------------------

OP = {"op": "dot", "self_s": 0.001, "share": 0.1}
BREAKDOWN = {"scope": "s", "traced_steps": 1, "traced_wall_s": 0.1, "lines": 1, "ops": 1}
RECORDS = {
    "300,000 profile ops": (
        {"profile": {"trace_dir": "p", "breakdown": {**BREAKDOWN, "top_ops": [OP] * 300_000}}},
        "profile.breakdown.top_ops: 300,000 entries; bench writes at most 100",
    ),
    "100,000 flags": ({"flags": ["x"] * 100_000}, "flags: 100,000 entries"),
    "100,000 repeats": ({"repeats": [{}] * 100_000}, "repeats: 100,000 entries"),
    "100,000 serve probes": (
        {"serve": {"slo": {"percentile": 99, "latency_ms": 50}, "probes": [{}] * 100_000}},
        "serve.probes: 100,000 probes",
    ),
    "batch_size 10**400": ({"key": {"batch_size": int(HUGE)}}, "key.batch_size"),
    "batch_size past the bound": ({"key": {"batch_size": MAX_BATCH + 1}}, "key.batch_size"),
    "a key number past float": ({"key": {"steps_per_call": int(HUGE)}}, "key.steps_per_call"),
}
READERS = {
    "results": ["results", "{r}"],
    "results --cell": ["results", "{r}", "--cell", "jax-cpu-predict-bs8-float32-synthetic"],
    "compare": ["compare", "{r}", "{r}"],
    "report": ["report", "{r}", "-o", "{o}/r.html"],
    "recommend": ["recommend", "{r}"],
    "export": ["export", "{r}", "-o", "{o}/e.json"],
    "baseline save": ["baseline", "save", "{r}", "-o", "{o}/b.json"],
    "gate": ["gate", "--baseline", "{r}", "--candidate", "{r}"],
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", list(RECORDS))
def test_a_record_beyond_what_bench_writes_is_refused_by_every_reader(
    tmp_path, capsys, case, reader
):
    change, message = RECORDS[case]
    rec = record(batch_size=8)
    for name, value in change.items():
        rec[name] = {**rec[name], **value} if name == "key" else value
    path = write_run(tmp_path / "results", "r", [rec])
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.replace("{r}", str(path)).replace("{o}", str(out)) for a in READERS[reader]]
    before = listing(tmp_path)
    code, err = run(capsys, *argv)
    assert code == 2, err
    assert f"{path / CELLS_FILE}:1" in err and message in err, err
    assert "Traceback" not in err and "unexpected" not in err
    assert len(err) < 1000  # one line, never the list itself
    assert listing(tmp_path) == before
