"""Validation catches what it can, and no error is "unexpected" (issue 20, invariants 7, 8).

Invariant 7: what can be known before a run is an error of ``bench validate`` (and of ``bench
run``, before anything is written): price entries that do not exist, negative model sizes,
counts that are not integers, a machines file's memory and accelerator strings, and a model
reference to a function that is no model factory, refused without calling it.

Invariant 8: every damaged input is one line naming the file and what was expected, exit 2:
unreadable scenario and machines files, path-like model references, a results folder that
cannot be one, a run-id collision, bad ``bench data make`` flags, a damaged ``serve`` block on
every reading command. Each case checks the exit code, the message, and that nothing was
written or changed. In-process; nothing starts a worker.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import runfolder
from bench.cli import main
from bench.runfolder import CELLS_FILE
from tests.fixtures.runs import record, write_run

SCENARIO = """\
name: checks
model: mlp
model_args: {hidden: [8]}
matrix: {workload: [predict], batch_size: [8]}
measure: {warmup_steps: 1, min_steps: 3, min_seconds: 0, max_seconds: 1, target_rel_ci: 0.5}
"""
ROOT_USER = os.geteuid() == 0


def listing(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_fifo():
                continue
            st = p.lstat()
            found[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def clean(err: str) -> None:
    assert "Traceback" not in err and "unexpected" not in err, err
    assert "errors.pydantic.dev" not in err and "For further information" not in err, err


# -- invariant 7: found at validation ---------------------------------------------------------

# case -> (--set override, what the one line says)
VALIDATION = {
    "price for an unknown device": ("pricing={b300x: 4}", "'b300x' is no device bench knows"),
    "price entry that does not exist": (
        "pricing={cpu: gcp/n9-huge}",
        "'gcp/n9-huge' names no price-table entry",
    ),
    "mlp hidden width negative": ("model_args.hidden=[-8]", "model_args.hidden[0]: got -8"),
    "mlp num_numeric negative": ("model_args.num_numeric=-1", "model_args.num_numeric: got -1"),
    "mlp embed_dim zero": ("model_args.embed_dim=0", "model_args.embed_dim: got 0"),
    "resnet width negative": (
        "model=resnet\n--set model_args={width: -4}",
        "model_args.width: got -4",
    ),
    "transformer d_model negative": (
        "model=transformer\n--set model_args={d_model: -64}",
        "model_args.d_model: got -64",
    ),
    "batch_size true": ("matrix.batch_size=[true]", "matrix.batch_size[0]: got True"),
    "batch_size '8'": ("matrix.batch_size=['8']", "matrix.batch_size[0]: got '8'"),
    "batch_size 8.5": ("matrix.batch_size=[8.5]", "matrix.batch_size[0]: got 8.5"),
    "steps_per_call true": ("steps_per_call=true", "steps_per_call: got True"),
    "max_batch_size '4'": ("max_batch_size='4'", "max_batch_size: got '4'"),
    "model: bench.cli:main": ("model=bench.cli:main", "a module of bench itself"),
    "model: bench.run.runner:start_run": ("model=bench.run.runner:start_run", "bench itself"),
}


@pytest.mark.parametrize("case", list(VALIDATION))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_what_can_be_known_before_a_run_is_a_validation_error(tmp_path, capsys, case, command):
    setting, message = VALIDATION[case]
    (tmp_path / "s.yaml").write_text(SCENARIO)
    sets = [a for item in setting.split("\n--set ") for a in ("--set", item)]
    argv = [command, str(tmp_path / "s.yaml"), *sets]
    if command == "run":
        argv += ["--results-dir", str(tmp_path / "results")]
    before = listing(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "s.yaml" in err, err
    clean(err)
    assert listing(tmp_path) == before  # nothing run, nothing written


FACTORIES = {
    "declared -> int": ("def factory() -> int:", "declared to return int"),
    "declared -> None": ("def factory() -> None:", "declared to return None"),
    "declared -> NoReturn": ("def factory() -> typing.NoReturn:", "declared to return"),
    "declared -> str": ("def factory() -> str:", "declared to return str"),
}


@pytest.mark.parametrize("case", list(FACTORIES))
def test_a_function_that_is_no_model_factory_is_refused_without_a_call(
    tmp_path, capsys, monkeypatch, case
):
    head, message = FACTORIES[case]
    marker = tmp_path / "called"
    module = f"notmodels_{list(FACTORIES).index(case)}"  # one module per case: imports are cached
    (tmp_path / f"{module}.py").write_text(
        f"import typing\nfrom pathlib import Path\n\n\n{head}\n"
        f"    Path({str(marker)!r}).write_text('called')\n    raise SystemExit(0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "s.yaml").write_text(SCENARIO.replace("model: mlp", f"model: {module}:factory"))
    code, _, err = run(capsys, "validate", str(tmp_path / "s.yaml"))
    assert code == 2 and message in err and "not called" in err, err
    assert not marker.exists()  # refused by what it says it returns, never run


MACHINES = {
    "memory in words": ("cpu: {memory: lots}", "cpu[0].memory: got 'lots'"),
    "memory with a space": ("cpu: {memory: 16 GB}", "cpu[0].memory: got '16 GB'"),
    "memory zero": ("cpu: {memory: '0'}", "cpu[0].memory: got '0'"),
    "memory with a newline": ('cpu: {memory: "16G\\n"}', "cpu[0].memory"),
    "accelerator with a space": (
        "gpu: {accelerator: 'NVIDIA L4; rm -rf', count: 1}",
        "gpu[0].accelerator: got 'NVIDIA L4; rm -rf'",
    ),
    "accelerator empty": ("gpu: {accelerator: '', count: 1}", "gpu[0].accelerator: got ''"),
    "node selector with a newline": (
        'cpu: {node_selector: {pool: "a\\nb"}}',
        "cpu[0].node_selector",
    ),
}


@pytest.mark.parametrize("case", list(MACHINES))
def test_a_machines_file_is_checked_at_validation(tmp_path, case):
    from bench.pipeline.machines import MachinesError, load_machines

    text, message = MACHINES[case]
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(MachinesError) as caught:
        load_machines(tmp_path / "m.yaml")
    assert f"m.yaml: {message}" in str(caught.value) and "\n" not in str(caught.value)


# -- invariant 8: one line, exit 2 -------------------------------------------------------------


def _binary(path: Path) -> None:
    path.write_bytes(bytes(range(256)))


def _latin1(path: Path) -> None:
    path.write_bytes(SCENARIO.replace("checks", "caf\xe9").encode("latin-1"))


def _folder(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)


UNREADABLE = {
    "binary": (_binary, "not UTF-8 text (byte 128 is 0x80"),
    "latin-1": (_latin1, "not UTF-8 text"),
    "a folder": (_folder, "is a folder"),
    "missing": (lambda path: None, "No such file"),
    "a FIFO nobody writes": (_fifo, "found an empty file"),
}
SCENARIO_COMMANDS = {
    "validate": ["validate", "{f}"],
    "run": ["run", "{f}", "--results-dir", "{t}/results"],
    "run --dry-run": ["run", "{f}", "--dry-run"],
    "data make --scenario": ["data", "make", "--scenario", "{f}"],
    "pipeline compile": ["pipeline", "compile", "{f}", "--image", "i", "-o", "{t}/p.yaml"],
}


@pytest.mark.parametrize("command", list(SCENARIO_COMMANDS))
@pytest.mark.parametrize("shape", list(UNREADABLE))
def test_an_unreadable_scenario_file_is_one_line(tmp_path, capsys, shape, command):
    make, message = UNREADABLE[shape]
    path = tmp_path / "s.yaml"
    make(path)
    argv = [
        a.replace("{f}", str(path)).replace("{t}", str(tmp_path))
        for a in SCENARIO_COMMANDS[command]
    ]
    before = listing(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and str(path) in err and message in err, err
    clean(err)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("shape", [s for s in UNREADABLE if s != "a FIFO nobody writes"])
def test_an_unreadable_machines_file_is_one_line(tmp_path, capsys, shape):
    make, message = UNREADABLE[shape]
    (tmp_path / "s.yaml").write_text(SCENARIO)
    path = tmp_path / "m.yaml"
    make(path)
    argv = ["pipeline", "compile", str(tmp_path / "s.yaml"), "--machines", str(path)]
    before = listing(tmp_path)
    code, _, err = run(capsys, *argv, "--image", "i", "-o", str(tmp_path / "p.yaml"))
    assert code == 2 and str(path) in err and message in err, err
    clean(err)
    assert listing(tmp_path) == before


def test_bench_list_names_an_unreadable_scenario_and_lists_the_others(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("# first: a fine scenario\n" + SCENARIO)
    _binary(tmp_path / "b.yaml")
    code, out, err = run(capsys, "list", "--scenarios", str(tmp_path))
    assert code == 0, err
    text = " ".join(out.split())
    assert "first: a fine scenario" in text and "unreadable: not UTF-8 text" in text


MODEL_REFS = {
    "a relative file": "./models/mlp.py",
    "an absolute file": "/etc/passwd",
    "a parent module path": "../x:y",
    "a file with a factory": "models/mlp.py:factory",
    "a relative import": ".mlp:factory",
    "a space": "my models:factory",
    "an empty module": ":factory",
    "an empty attribute": "models.mlp:",
}


@pytest.mark.parametrize("case", list(MODEL_REFS))
def test_a_path_like_model_reference_is_one_line(tmp_path, capsys, case):
    reference = MODEL_REFS[case]
    (tmp_path / "s.yaml").write_text(SCENARIO.replace("model: mlp", f"model: {reference!r}"))
    code, _, err = run(capsys, "validate", str(tmp_path / "s.yaml"))
    assert code == 2 and "s.yaml:2: model:" in err and "expected 'package.module:factory'" in err
    clean(err)


def _results_a_file(tmp_path: Path) -> Path:
    (tmp_path / "results").write_text("a file")
    return tmp_path / "results"


def _results_under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("a file")
    return tmp_path / "afile" / "results"


def _results_unwritable(tmp_path: Path) -> Path:
    (tmp_path / "ro").mkdir(mode=0o500)
    return tmp_path / "ro" / "results"


RESULTS_DIRS = {
    "a file": (_results_a_file, "the results folder is a file"),
    "under a file": (_results_under_a_file, "has a file, expected a folder on its path"),
}
if not ROOT_USER:
    RESULTS_DIRS["in a read-only folder"] = (_results_unwritable, "permission denied")


@pytest.mark.parametrize("case", list(RESULTS_DIRS))
def test_a_results_folder_that_cannot_be_one_is_one_line(tmp_path, capsys, case):
    make, message = RESULTS_DIRS[case]
    (tmp_path / "s.yaml").write_text(SCENARIO)
    results = make(tmp_path)
    before = listing(tmp_path)
    code, _, err = run(capsys, "run", str(tmp_path / "s.yaml"), "--results-dir", str(results))
    assert code == 2 and str(results) in err and message in err and "--results-dir" in err, err
    clean(err)
    assert listing(tmp_path) == before


def test_a_run_id_collision_draws_a_fresh_id_then_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    results = tmp_path / "results"
    (results / "taken").mkdir(parents=True)
    (results / "taken" / "mine.txt").write_text("someone else's\n")
    ids = iter(["taken", "fresh"])
    monkeypatch.setattr(runfolder, "new_run_id", lambda name: next(ids))
    writer = runfolder.RunWriter.create(results, {"scenario": {"name": "checks"}})
    writer.close()
    assert writer.path.name == "fresh"  # a clash costs one more draw, nothing else
    monkeypatch.setattr(runfolder, "new_run_id", lambda name: "taken")
    before = listing(tmp_path)
    code, _, err = run(capsys, "run", str(tmp_path / "s.yaml"), "--results-dir", str(results))
    assert code == 2 and "taken: a run folder of this id already exists" in err, err
    clean(err)
    assert listing(tmp_path) == before
    assert (results / "taken" / "mine.txt").read_text() == "someone else's\n"


DATA_FLAGS = {
    "--examples -5": (["--examples", "-5"], "--examples: got -5; expected a number greater"),
    "--shards 0": (["--shards", "0"], "--shards: got 0; expected a number greater"),
    "--jpeg-quality 101": (["--jpeg-quality", "101"], "--jpeg-quality: got 101"),
    "--stored-image-size 0": (["--stored-image-size", "0"], "--stored-image-size: got 0"),
    "--seed -1": (["--seed", "-1"], "--seed: got -1"),
    "--examples x": (["--examples", "x"], "--examples: invalid int value"),
    "--model-args a list": (["--model-args", "[1]"], "--model-args: expected a JSON object"),
    "--model-args not JSON": (["--model-args", "{bad"], "--model-args: not valid JSON"),
    "--model-args wrong type": (
        ["--model-args", '{"hidden": "x"}'],
        "mlp: model_args.hidden: got 'x'",
    ),
    "--model-args negative": (["--model-args", '{"hidden": [-1]}'], "model_args.hidden.0: got -1"),
    "--model-args unknown key": (["--model-args", '{"nope": 1}'], "model_args.nope"),
    "--set without --scenario": (["--set", "seed=1"], "--set: applies with --scenario only"),
}


@pytest.mark.parametrize("case", list(DATA_FLAGS))
def test_bad_data_make_flags_are_one_line_each(tmp_path, capsys, case):
    flags, message = DATA_FLAGS[case]
    code, _, err = run(capsys, "data", "make", "mlp", "--dir", str(tmp_path / "data"), *flags)
    assert code == 2 and message in err, err
    clean(err)
    assert not (tmp_path / "data").exists()


SERVE_DAMAGE = {
    "a list": ([1, 2], "serve: expected an object, found a list"),
    "no slo": ({"probes": []}, "serve.slo: missing"),
    "slo a string": ({"slo": "p99", "probes": []}, "serve.slo: expected an object"),
    "percentile a string": (
        {"slo": {"percentile": "99", "latency_ms": 50}, "probes": []},
        "serve.slo.percentile: expected a number",
    ),
    "no probes": ({"slo": {"percentile": 99, "latency_ms": 50}}, "serve.probes: missing"),
    "probes a dict": (
        {"slo": {"percentile": 99, "latency_ms": 50}, "probes": {"a": 1}},
        "serve.probes: expected a list",
    ),
    "a probe a number": (
        {"slo": {"percentile": 99, "latency_ms": 50}, "probes": [5]},
        "serve.probes[0]: expected an object",
    ),
    "a probe's rate a string": (
        {"slo": {"percentile": 99, "latency_ms": 50}, "probes": [{"offered_qps": "fast"}]},
        "serve.probes[0].offered_qps: expected a number",
    ),
    "a probe's verdict a number": (
        {"slo": {"percentile": 99, "latency_ms": 50}, "probes": [{"meets_slo": 1}]},
        "serve.probes[0].meets_slo: expected true/false",
    ),
    "a probe's batch size a list": (
        {"slo": {"percentile": 99, "latency_ms": 50}, "probes": [{"batch_size": [1]}]},
        "serve.probes[0].batch_size: expected an object",
    ),
}
READERS = {
    "results": ["results", "{r}"],
    "compare": ["compare", "{r}", "{r}"],
    "report": ["report", "{r}", "-o", "{o}/r.html"],
    "recommend": ["recommend", "{r}"],
    "gate": ["gate", "--baseline", "{r}", "--candidate", "{r}"],
    "export": ["export", "{r}", "-o", "{o}/e.json"],
    "baseline save": ["baseline", "save", "{r}", "-o", "{o}/b.json"],
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", list(SERVE_DAMAGE))
def test_a_damaged_serve_block_is_one_line_on_every_reading_command(tmp_path, capsys, case, reader):
    block, message = SERVE_DAMAGE[case]
    rec = {**record(workload="serve", batch_size=1), "serve": block}
    path = write_run(tmp_path / "results", "r", [rec])
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.replace("{r}", str(path)).replace("{o}", str(out)) for a in READERS[reader]]
    before = listing(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert f"{path / CELLS_FILE}:1" in err and message in err, err
    clean(err)
    assert listing(tmp_path) == before


def test_a_json_integer_of_5000_digits_in_a_record_is_one_line(tmp_path, capsys):
    path = write_run(tmp_path / "results", "r", [record(batch_size=8)])
    rec = json.loads((path / CELLS_FILE).read_text())
    text = json.dumps(rec).replace('"batch_size": 8', '"batch_size": ' + "9" * 5000)
    (path / CELLS_FILE).write_text(text + "\n")
    code, _, err = run(capsys, "results", str(path))
    assert code == 2 and "cells.jsonl:1: a number too long to be one bench wrote" in err, err
    clean(err)
