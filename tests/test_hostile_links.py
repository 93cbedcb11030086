"""No write leaves the run folder (issue 20, invariant 1): a symbolic link planted at any path a
run writes is refused with one line naming it, before a first run's workers start and before a
resume writes anything; the link's target is untouched, nothing is written outside the results
folder, and the run keeps its status and its finished cells.

The walk runs one small real run (JAX predict and train, parity on, every cell profiled, a
LiteRT predict cell when ai-edge-litert is installed) and one real resume of it (which sets a
cut-off record aside into ``cells.jsonl.damaged``), lists every path they wrote, then plants a
link at each in turn, in-process: the refusal comes before any worker starts, so each case
costs a fraction of a second. Below it, the writers themselves are tried with links planted
past the runner's check (a link appearing mid-run): none writes through one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import runfolder
from bench.cli import main
from bench.runfolder import CELLS_FILE, RUN_FILE, RunWriter
from tests.conftest import bench_cmd

LITERT = importlib.util.find_spec("ai_edge_litert") is not None
# The smallest run that writes every kind of file: tiny MLP, minimal measure, parity on a 16
# example evaluation set, one traced call per cell.
SCENARIO = """\
name: links
model: mlp
model_args: {hidden: [8], num_numeric: 4, num_categorical: 2, vocab_size: 16, embed_dim: 4}
matrix: {framework: {frameworks}, workload: [predict, train], batch_size: [8]}
exclude: [{framework: litert, workload: train}]
measure: {warmup_steps: 1, min_steps: 2, min_seconds: 0, max_seconds: 1, target_rel_ci: 0.9,
          timeout_s: 120, parity_examples: 16, profile: {steps: 1}}
""".replace("{frameworks}", "[jax, litert]" if LITERT else "[jax]")


def listing(root: Path, skip: Path | None = None) -> dict[str, tuple[str, int, bytes]]:
    """Every path under ``root`` (not below ``skip``): its kind, size and a content digest."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                found[str(p)] = ("link", 0, os.readlink(p).encode())
            elif p.is_dir():
                found[str(p)] = ("dir", 0, b"")
            else:
                found[str(p)] = ("file", p.stat().st_size, p.read_bytes())
    return found


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A real run, resumed once after its last record was cut off; and every path (relative
    to the run folder) that the run and the resume wrote."""
    root = tmp_path_factory.mktemp("base").resolve()
    (root / "s.yaml").write_text(SCENARIO)
    results = root / "results"
    first = subprocess.run(
        bench_cmd("run", str(root / "s.yaml"), "--results-dir", str(results)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    (run,) = results.iterdir()
    lines = (run / CELLS_FILE).read_text().splitlines()
    (run / CELLS_FILE).write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:50])
    resumed = subprocess.run(
        bench_cmd("run", "--resume", str(run)), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    written = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    for expected in (RUN_FILE, CELLS_FILE, "run.lock", "cells.jsonl.damaged", "parity"):
        assert expected in written
    assert any(p.startswith("profiles/") for p in written)
    assert any(p.endswith(".log") for p in written)
    assert not LITERT or any(p.startswith("litert/") for p in written)
    return run, written


def _plant(path: Path, outside: Path, template: Path) -> None:
    """Put a link at ``path`` (replacing what is there) to ``outside``, a copy of ``template``
    (the base run's file or folder at that place), so the target looks like what bench wants."""
    if template.is_dir():
        shutil.copytree(template, outside)
    else:
        shutil.copyfile(template, outside)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside)


def _one_line_naming(err: str, path: Path) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert str(path) in lines[0] and "symbolic link" in lines[0], err
    assert "Traceback" not in err and "unexpected" not in err


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("when", ["resume", "first run"])
def test_a_link_at_any_path_a_run_writes_is_refused(tmp_path, capsys, monkeypatch, base, when):
    run, written = base
    tmp_path = tmp_path.resolve()
    check = _resume_case if when == "resume" else _first_run_case
    failures = []
    for i, rel in enumerate(written):  # every path, each on its own
        try:
            check(tmp_path / f"case{i}", run, rel, capsys, monkeypatch)
        except AssertionError as exc:
            failures.append(f"{rel}: {exc}")
        shutil.rmtree(tmp_path / f"case{i}")
    assert not failures, "\n".join(failures)


def _resume_case(root: Path, base_run: Path, rel: str, capsys, monkeypatch) -> None:
    """A copy of the run with its last cell to run again; a link at ``rel``; then a resume."""
    results = root / "results"
    run = results / base_run.name
    shutil.copytree(base_run, run)
    lines = (run / CELLS_FILE).read_text().splitlines()
    (run / CELLS_FILE).write_text("\n".join(lines[:-1]) + "\n")  # one cell left to run
    meta = json.loads((run / RUN_FILE).read_text())
    meta["status"] = "interrupted"
    (run / RUN_FILE).write_text(json.dumps(meta))
    kept = (run / CELLS_FILE).read_bytes()
    _plant(run / rel, root / "outside", base_run / rel)
    before = listing(root, skip=results)
    code = main(["run", "--resume", str(run)])
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    _one_line_naming(captured.err, run / rel)
    assert listing(root, skip=results) == before  # the target and all else outside: untouched
    (run / rel).unlink()  # the link gone, the run is as it was
    if rel != CELLS_FILE:
        assert (run / CELLS_FILE).read_bytes() == kept
    if rel != RUN_FILE:
        assert json.loads((run / RUN_FILE).read_text())["status"] == "interrupted"


def _first_run_case(root: Path, base_run: Path, rel: str, capsys, monkeypatch) -> None:
    """A new run of the scenario with a link planted at ``rel`` as soon as its folder exists."""
    root.mkdir()
    (root / "s.yaml").write_text(SCENARIO)
    results = root / "results"
    create = RunWriter.create.__func__
    made: list[Path] = []
    planted: list[dict] = []  # outside the results folder, as the link was planted

    def planting(cls, results_dir, meta):
        writer = create(cls, results_dir, meta)
        made.append(writer.path)
        _plant(writer.path / rel, root / "outside", base_run / rel)
        planted.append(listing(root, skip=results))
        return writer

    monkeypatch.setattr(RunWriter, "create", classmethod(planting))
    code = main(["run", str(root / "s.yaml"), "--results-dir", str(results)])
    captured = capsys.readouterr()
    monkeypatch.undo()
    assert code == 2, captured.out + captured.err
    (run,) = made
    _one_line_naming(captured.err, run / rel)
    assert listing(root, skip=results) == planted[0]
    assert not (run / WORKER_LOG_JAX).exists() or rel == WORKER_LOG_JAX  # no worker started
    if rel != RUN_FILE:
        assert json.loads((run / RUN_FILE).read_text())["status"] == "interrupted"


WORKER_LOG_JAX = runfolder.WORKER_LOG.format(framework="jax", device="cpu")


# -- the writers themselves: a link that appears after the runner looked ------------------------


def _decoy(tmp_path: Path, folder: bool) -> Path:
    target = tmp_path / "elsewhere"
    if folder:
        target.mkdir()
        (target / "keep").write_text("precious\n")
    else:
        target.write_text("precious\n")
    return target


def _untouched(target: Path) -> bool:
    if target.is_dir():
        return [p.name for p in target.iterdir()] == ["keep"]
    return target.read_text() == "precious\n"


def _parity(run: Path) -> None:
    from bench.backends import parity
    from tests.test_parity import NumpyBackend, request

    parity.shared_set(run, request(), NumpyBackend, "numpy", n=16)


def _parity_name() -> str:
    from bench.backends import parity
    from tests.test_parity import request

    req = request()
    return parity.set_name("mlp", req.args.model_dump(mode="json"), 0)


def _profile(run: Path) -> dict:
    from bench.workloads.cell.profiling import profile_steps
    from tests.test_profiling import ProfiledWorkload

    return profile_steps(ProfiledWorkload(), 1, run, "profiles/cell")


def _writer(run: Path) -> None:
    writer = RunWriter(run, {"schema_version": 1, "run_id": run.name}, os.open(run, os.O_RDONLY))
    try:
        writer.update(status="running")
        writer.append_cell({"cell_id": "c"})
    finally:
        writer.close()


def _data_lock(run: Path) -> None:
    from bench.inputs import datafiles

    with datafiles._lock(run / ".x.lock"):
        pass


# writer, where its link goes, whether the link stands for a folder, what the writer says
WRITERS = {
    "run.json": (_writer, RUN_FILE, False, "symbolic link"),
    "cells.jsonl": (_writer, CELLS_FILE, False, "symbolic link"),
    "parity/": (_parity, "parity", True, "symbolic link"),
    "parity/<set>/": (_parity, f"parity/{_parity_name()}", True, "symbolic link"),
    "parity/<set>/weights.npz": (
        _parity,
        f"parity/{_parity_name()}/weights.npz",
        False,
        "symbolic link",
    ),
    "parity/<set>/meta.json": (_parity, f"parity/{_parity_name()}/meta.json", False, "link"),
    "parity/<set>.lock": (_parity, f"parity/{_parity_name()}.lock", False, "link"),
    "profiles/": (_profile, "profiles", True, "symbolic link"),
    "profiles/cell": (_profile, "profiles/cell", True, None),  # a fresh folder beside it
    "data lock": (_data_lock, ".x.lock", False, "cannot open the data lock"),
}


@pytest.mark.parametrize("case", list(WRITERS))
def test_no_writer_writes_through_a_link(tmp_path, case):
    write, rel, folder, says = WRITERS[case]
    run = tmp_path / "run"
    run.mkdir()
    target = _decoy(tmp_path, folder)
    (run / rel).parent.mkdir(parents=True, exist_ok=True)
    (run / rel).symlink_to(target)
    try:
        found = write(run)
    except Exception as exc:  # refused: what it says names the link
        assert says is not None and says in str(exc), str(exc)
        assert str(run / rel) in str(exc) or "symbolic link" in str(exc), str(exc)
    else:
        if isinstance(found, dict) and "unavailable" in found:  # a profile without its trace
            assert says in found["unavailable"]
        else:
            assert says is None, f"{case}: written without complaint"
    assert _untouched(target)
    assert (run / rel).is_symlink()  # left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "run"]


def test_a_profile_of_a_retried_cell_goes_into_a_fresh_private_folder(tmp_path):
    run = tmp_path / "run"
    (run / "profiles" / "cell" / "plugins").mkdir(parents=True)  # an earlier attempt's trace
    first = _profile(run)
    assert first["trace_dir"] == "profiles/cell.2"
    assert (run / "profiles" / "cell.2").stat().st_mode & 0o777 == 0o700
    assert (run / first["program"]).is_file()


@pytest.mark.slow
def test_a_litert_model_file_is_never_written_through_a_link(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from bench.backends.litert.backend import keep_model_file

    run = tmp_path / "run"
    (run / "litert").mkdir(parents=True)
    target = _decoy(tmp_path, folder=False)
    name = "m-" + __import__("hashlib").sha256(b"model").hexdigest()[:12] + ".tflite"
    (run / "litert" / name).symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        keep_model_file(b"model", str(run), "m")
    assert _untouched(target)
    (run / "litert" / name).unlink()
    (run / "litert").rmdir()
    (run / "litert").symlink_to(tmp_path / "elsewhere-dir")
    (tmp_path / "elsewhere-dir").mkdir()
    with pytest.raises(OSError, match="symbolic link"):
        keep_model_file(b"model", str(run), "m")
    assert list((tmp_path / "elsewhere-dir").iterdir()) == []
