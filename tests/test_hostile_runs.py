"""Run folders under stress (issue 12, invariants 1, 4 and 5): one writer at a time, no links
followed, a cut-off record set aside before anything is appended, and every damaged input an
input error: exit 2 with the file and what is wrong, never a traceback, nothing lost, nothing
written outside the results directory.

The damaged-file cases run every reading command in-process on small constructed runs (fast);
the cases that need a real worker (a resume, two resumers at once) are marked slow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import runfolder
from bench.cli import main
from bench.runfolder import CELLS_FILE, LOCK_FILE, RUN_FILE, ResultsError, RunWriter, load_run
from tests.conftest import bench_cmd, sigint_default
from tests.fixtures.runs import record, write_run

# A scenario a resume can plan from (the constructed runs' default text has no name).
SCENARIO = """\
name: constructed
model: mlp
matrix: {workload: [predict], batch_size: [64, 128, 256]}
"""
ROOT_USER = os.geteuid() == 0  # root reads files whatever their permissions


def make_run(root: Path, run_id: str, batches=(64, 128), scenario: str = SCENARIO) -> Path:
    path = write_run(root, run_id, [record(batch_size=b, median_s=b / 6400) for b in batches])
    meta = json.loads((path / RUN_FILE).read_text())
    meta["scenario"]["text"] = scenario
    meta["status"] = "interrupted"
    (path / RUN_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime: what a command wrote or changed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            found[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def bench(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


# -- damaged run folders: every reading command -------------------------------------------


def _meta(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        meta = json.loads((run / RUN_FILE).read_text())
        change(meta)
        (run / RUN_FILE).write_text(json.dumps(meta))

    return damage


def _first_record(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        lines = (run / CELLS_FILE).read_text().splitlines()
        rec = json.loads(lines[0])
        change(rec)
        (run / CELLS_FILE).write_text("\n".join([json.dumps(rec), *lines[1:]]) + "\n")

    return damage


def _write(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda run: (run / name).write_bytes(content)


def _replace_with_dir(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return damage


def _link_out(name: str) -> Callable[[Path], None]:
    # The file moves outside the run folder and a link takes its place.
    def damage(run: Path) -> None:
        outside = run.parent.parent / f"outside-{name}"
        (run / name).rename(outside)
        (run / name).symlink_to(outside)

    return damage


def _prepend_line(line: bytes) -> Callable[[Path], None]:
    return lambda run: (run / CELLS_FILE).write_bytes(
        line + b"\n" + (run / CELLS_FILE).read_bytes()
    )


# shape -> (damage, file named in the message, what the message says)
SHAPES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "run.json truncated": (
        lambda run: (run / RUN_FILE).write_text((run / RUN_FILE).read_text()[:150]),
        RUN_FILE,
        "not valid JSON",
    ),
    "run.json empty": (_write(RUN_FILE, b""), RUN_FILE, "empty, expected a JSON object"),
    "run.json binary": (_write(RUN_FILE, bytes(range(256))), RUN_FILE, "not UTF-8 text"),
    "run.json bad UTF-8": (_write(RUN_FILE, b'{"run_id": "\xff"}'), RUN_FILE, "not UTF-8 text"),
    "run.json a list": (
        _write(RUN_FILE, b"[1, 2]"),
        RUN_FILE,
        "expected a JSON object, found a list",
    ),
    "run.json nested deeply": (
        _write(RUN_FILE, b"[" * 100_000 + b"]" * 100_000),
        RUN_FILE,
        "nested too deeply",
    ),
    "run.json unknown schema": (
        _meta(lambda m: m.update(schema_version=99, bench_version="9.9")),
        RUN_FILE,
        "schema_version 99 (bench 9.9)",
    ),
    "run.json no run_id": (_meta(lambda m: m.pop("run_id")), RUN_FILE, "run_id: missing"),
    "run.json run_id a number": (
        _meta(lambda m: m.update(run_id=5)),
        RUN_FILE,
        "run_id: expected a string, found a number",
    ),
    "run.json no scenario": (_meta(lambda m: m.pop("scenario")), RUN_FILE, "scenario: missing"),
    "run.json environment a string": (
        _meta(lambda m: m.update(environment="x")),
        RUN_FILE,
        "environment: expected an object, found a string",
    ),
    "run.json accelerators a string": (
        _meta(lambda m: m["environment"].update(accelerators="gpu")),
        RUN_FILE,
        "environment.accelerators: expected a list",
    ),
    "run.json cells_planned wrong": (
        _meta(lambda m: m.update(cells_planned=[1])),
        RUN_FILE,
        "cells_planned[0]: expected a string",
    ),
    "run.json status a number": (
        _meta(lambda m: m.update(status=3)),
        RUN_FILE,
        "status: expected a string, found a number",
    ),
    "run.json a directory": (_replace_with_dir(RUN_FILE), RUN_FILE, "is a directory"),
    "run.json a link": (_link_out(RUN_FILE), RUN_FILE, "is a symbolic link"),
    "cells.jsonl binary": (
        _write(CELLS_FILE, bytes(range(128, 256)) * 4),
        CELLS_FILE,
        "not UTF-8 text",
    ),
    "cells.jsonl bad UTF-8": (
        lambda run: (run / CELLS_FILE).write_bytes(
            (run / CELLS_FILE).read_bytes().replace(b'"ok"', b'"o\xff"', 1)
        ),
        CELLS_FILE,
        "not UTF-8 text",
    ),
    "cells.jsonl zeros at the end": (
        lambda run: (run / CELLS_FILE).write_bytes((run / CELLS_FILE).read_bytes() + b"\0" * 512),
        CELLS_FILE,
        "not valid JSON",
    ),
    "cells.jsonl cut mid-file": (
        lambda run: (run / CELLS_FILE).write_text(
            "\n".join([(lines := (run / CELLS_FILE).read_text().splitlines())[0][:60], *lines[1:]])
            + "\n"
        ),
        CELLS_FILE + ":1",
        "not valid JSON",
    ),
    "cells.jsonl a list line": (_prepend_line(b"[1]"), CELLS_FILE + ":1", "found a list"),
    "cells.jsonl nested deeply": (
        _prepend_line(b"[" * 100_000 + b"]" * 100_000),
        CELLS_FILE + ":1",
        "nested too deeply",
    ),
    "record cell_id a number": (
        _first_record(lambda r: r.update(cell_id=5)),
        CELLS_FILE + ":1",
        "cell_id: expected a string",
    ),
    "record without key": (
        _first_record(lambda r: r.pop("key")),
        CELLS_FILE + ":1",
        "no cell key",
    ),
    "record key nested": (
        _first_record(lambda r: r["key"].update(model={"a": 1})),
        CELLS_FILE + ":1",
        "key.model: expected a text or number",
    ),
    "record batch_size text": (
        _first_record(lambda r: r["key"].update(batch_size="x")),
        CELLS_FILE + ":1",
        "key.batch_size: expected a positive integer",
    ),
    "record unknown status": (
        _first_record(lambda r: r.update(status="great")),
        CELLS_FILE + ":1",
        "status: 'great' is not one of",
    ),
    "record metrics a list": (
        _first_record(lambda r: r.update(metrics=[1])),
        CELLS_FILE + ":1",
        "metrics: expected an object",
    ),
    "record metric a string": (
        _first_record(lambda r: r["metrics"].update(step_time_s="fast")),
        CELLS_FILE + ":1",
        "metrics.step_time_s: expected an object",
    ),
    "record samples not numbers": (
        _first_record(lambda r: r["samples"].update(step_time_s=["a"])),
        CELLS_FILE + ":1",
        "samples.step_time_s[0]: expected a number",
    ),
    "record samples nested": (
        _first_record(lambda r: r["samples"].update(step_time_s=[[0.1]])),
        CELLS_FILE + ":1",
        "samples.step_time_s[0]: expected a number",
    ),
    "record flags a number": (
        _first_record(lambda r: r.update(flags=5)),
        CELLS_FILE + ":1",
        "flags: expected a list",
    ),
    "cells.jsonl a directory": (_replace_with_dir(CELLS_FILE), CELLS_FILE, "is a directory"),
    "cells.jsonl a link": (_link_out(CELLS_FILE), CELLS_FILE, "is a symbolic link"),
}
if not ROOT_USER:
    SHAPES["run.json unreadable"] = (
        lambda run: (run / RUN_FILE).chmod(0),
        RUN_FILE,
        "cannot read (permission denied)",
    )
    SHAPES["cells.jsonl unreadable"] = (
        lambda run: (run / CELLS_FILE).chmod(0),
        CELLS_FILE,
        "cannot read (permission denied)",
    )


def reading_commands(res: Path, good: Path, bad: Path, out: Path) -> dict[str, list[str]]:
    return {
        "results RUN": ["results", str(bad)],
        "compare": ["compare", str(good), str(bad)],
        "report": ["report", str(good), str(bad), "-o", str(out / "r.html")],
        "recommend": ["recommend", str(bad)],
        "export": ["export", str(bad), "-o", str(out / "e.json")],
        "baseline save": ["baseline", "save", str(bad), "-o", str(out / "b.json")],
        "gate": ["gate", "--baseline", str(good), "--candidate", str(bad)],
        "gate (as baseline)": ["gate", "--baseline", str(bad), "--candidate", str(good)],
        "run --resume --dry-run": ["run", "--resume", str(bad), "--dry-run"],
        "run --resume": ["run", "--resume", str(bad)],
    }


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_damaged_run_folder_is_an_input_error_for_every_command(tmp_path, capsys, shape):
    damage, file, what = SHAPES[shape]
    res = tmp_path / "results"
    good = make_run(res, "good")
    bad = make_run(res, "bad")
    damage(bad)
    good_cells = (good / CELLS_FILE).read_bytes()
    before = listing(tmp_path)
    try:
        for name, argv in reading_commands(res, good, bad, tmp_path / "out").items():
            code, _, err = bench(capsys, *argv)
            assert code == 2, f"{name}: exit {code}: {err}"
            assert f"{bad / file}" in err and what in err, f"{name}: {err}"
            assert "unexpected" not in err and "Traceback" not in err, f"{name}: {err}"
        # One damaged run is reported by the listing, and the others are still listed.
        code, out, err = bench(capsys, "results", "--results-dir", str(res))
        assert code == 0, err
        assert "good" in out and "constructed" in out
        assert what.split()[0] in " ".join(out.replace("│", " ").split())
    finally:
        for path in (bad / RUN_FILE, bad / CELLS_FILE):
            if path.exists() and not path.is_symlink():
                path.chmod(0o644)
    # Nothing written anywhere (no output file, no lock, no side file), nothing changed.
    assert listing(tmp_path) == before
    assert (good / CELLS_FILE).read_bytes() == good_cells
    assert len(load_run(good).cells) == 2


def test_a_cut_off_last_record_is_read_with_a_warning_and_nothing_lost(tmp_path, capsys):
    run = make_run(tmp_path / "results", "r", batches=(64, 128))
    text = (run / CELLS_FILE).read_text()
    (run / CELLS_FILE).write_text(text[:-200])
    loaded = load_run(run)
    assert list(loaded.cells) == [json.loads(text.splitlines()[0])["cell_id"]]
    assert "cells.jsonl:2: truncated last record ignored" in loaded.warnings[0]
    before = listing(tmp_path)
    code, _, err = bench(capsys, "compare", str(run), str(run))
    assert code == 0 and "truncated last record ignored" in err
    assert listing(tmp_path) == before  # a reader never repairs


def test_a_huge_line_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    # Readers take cells.jsonl a line at a time, and no line beyond the bound.
    run = make_run(tmp_path, "r")
    monkeypatch.setattr(runfolder, "MAX_RECORD_BYTES", 4096)
    _prepend_line(json.dumps({"cell_id": "x", "pad": "a" * 10_000}).encode())(run)
    with pytest.raises(ResultsError, match=r"cells.jsonl:1: a line longer than"):
        load_run(run)


def test_a_results_folder_that_cannot_be_listed_entirely(tmp_path, capsys):
    res = tmp_path / "results"
    make_run(res, "a-good")
    make_run(res, "b-bad")
    (res / "b-bad" / RUN_FILE).write_bytes(b"\xff\xfe")
    (res / "c-not-a-run").mkdir()
    code, out, err = bench(capsys, "results", "--results-dir", str(res))
    assert code == 0, err
    flat = " ".join(out.replace("│", " ").split())
    assert "a-good" in flat and "not UTF-8 text" in flat and "c-not-a-run" not in flat


# -- damaged baseline and policy files ----------------------------------------------------

BASELINE_SHAPES = {
    "binary": (bytes(range(256)), "not UTF-8 text"),
    "nested deeply": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "truncated": (b'{"format": "bench-baseline", "cel', "not valid JSON"),
    "a list": (b"[]", "not a bench baseline file"),
}


@pytest.mark.parametrize("shape", list(BASELINE_SHAPES))
def test_a_damaged_baseline_file_is_an_input_error(tmp_path, capsys, shape):
    content, what = BASELINE_SHAPES[shape]
    run = make_run(tmp_path / "results", "r")
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(content)
    before = listing(tmp_path)
    code, _, err = bench(capsys, "gate", "--baseline", str(baseline), "--candidate", str(run))
    assert code == 2 and f"{baseline}" in err and what in err, err
    code, _, err = bench(capsys, "baseline", "save", str(baseline), "-o", str(tmp_path / "o.json"))
    assert code == 2 and what in err, err
    assert listing(tmp_path) == before


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 12)}]\n"
    for p, n in zip("abcdefghi", "bcdefghij", strict=True)
)
POLICY_SHAPES = {
    "binary": (bytes(range(256)), "not UTF-8 text"),
    "bad UTF-8": (b"threshold: \xff\n", "not UTF-8 text"),
    "nested deeply": (b"[" * 20_000, "nested more than 64 levels deep"),
    "alias bomb": (BOMB.encode(), "expands to more than 100,000 values"),
    "a list": (b"[1]", "(top level)"),
    "a directory": (None, "is a folder; expected a policy file"),
}


@pytest.mark.parametrize("shape", list(POLICY_SHAPES))
def test_a_damaged_policy_is_an_input_error_quickly(tmp_path, capsys, shape):
    content, what = POLICY_SHAPES[shape]
    run = make_run(tmp_path / "results", "r")
    policy = tmp_path / "policy.yaml"
    if content is None:
        policy.mkdir()
    else:
        policy.write_bytes(content)
    code, _, err = bench(
        capsys, "gate", "--baseline", str(run), "--candidate", str(run), "--policy", str(policy)
    )
    assert code == 2 and f"{policy}" in err and what in err, err


def test_an_unexpected_error_in_the_gate_exits_2_never_1(tmp_path, capsys, monkeypatch):
    # Exit 1 means a regression to CI: a bug reached by odd input must not look like one.
    import bench.gate.regression as regression

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(regression, "run_gate", broken)
    run = make_run(tmp_path / "results", "r")
    code, _, err = bench(capsys, "gate", "--baseline", str(run), "--candidate", str(run))
    assert code == 2, err
    assert "bench gate: unexpected TypeError" in err and "unsupported operand" in err


# -- one writer, no links, resume ---------------------------------------------------------


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path, capsys):
    run = make_run(tmp_path / "results", "r", batches=(64,))
    first, _ = RunWriter.reopen(run)
    try:
        with pytest.raises(ResultsError, match=rf"another bench process \(pid {os.getpid()}\)"):
            RunWriter.reopen(run)
        before = listing(tmp_path)
        code, _, err = bench(capsys, "run", "--resume", str(run))
        assert code == 2, err
        assert f"{run}: another bench process (pid {os.getpid()}) is writing this run folder" in err
        assert listing(tmp_path) == before  # measured nothing, wrote nothing
    finally:
        first.close()
    second, _ = RunWriter.reopen(run)  # free again once the first is done
    second.close()


def test_resume_sets_aside_a_cut_off_record_then_appends_on_a_fresh_line(tmp_path):
    run = make_run(tmp_path, "r", batches=(64, 128))
    lines = (run / CELLS_FILE).read_text().splitlines()
    torn = lines[1][:100]
    (run / CELLS_FILE).write_text(lines[0] + "\n" + torn)
    writer, loaded = RunWriter.reopen(run)
    try:
        assert list(loaded.cells) == [json.loads(lines[0])["cell_id"]] and not loaded.warnings
        assert (run / (CELLS_FILE + ".damaged")).read_text() == torn + "\n"
        assert "cells.jsonl:2: cut-off last record (100 bytes" in writer.notes[0]
        assert "moved to" in writer.notes[0] and "cells.jsonl.damaged" in writer.notes[0]
        writer.append_cell(json.loads(lines[1]))
    finally:
        writer.close()
    again = load_run(run)
    assert len(again.cells) == 2 and not again.warnings
    assert (run / CELLS_FILE).read_text() == lines[0] + "\n" + lines[1] + "\n"


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    run = make_run(tmp_path, "r", batches=(64, 128))
    text = (run / CELLS_FILE).read_text()
    (run / CELLS_FILE).write_text(text.rstrip("\n"))
    writer, loaded = RunWriter.reopen(run)
    writer.close()
    assert len(loaded.cells) == 2 and not writer.notes
    assert (run / CELLS_FILE).read_text() == text
    assert not (run / (CELLS_FILE + ".damaged")).exists()


@pytest.mark.parametrize("name", [CELLS_FILE, LOCK_FILE])
def test_a_writer_refuses_links_inside_the_run_folder(tmp_path, name):
    run = make_run(tmp_path / "results", "r")
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    if (run / name).exists():
        (run / name).unlink()
    (run / name).symlink_to(target)
    with pytest.raises(ResultsError, match="is a symbolic link"):
        RunWriter.reopen(run)
    assert target.read_text() == "precious\n"


def test_worker_logs_are_never_opened_through_a_link(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    (tmp_path / "worker-jax-cpu.log").symlink_to(target)
    with pytest.raises(OSError) as caught:
        runfolder.open_in_run(tmp_path / "worker-jax-cpu.log", "ab")
    assert "symbolic link" in runfolder.os_problem(caught.value, "open")
    assert target.read_text() == "precious\n"


def test_resume_dry_run_lists_the_missing_cells_and_writes_nothing(tmp_path, capsys):
    run = make_run(tmp_path / "results", "r", batches=(64,))
    before = listing(tmp_path)
    code, out, err = bench(capsys, "run", "--resume", str(run), "--dry-run")
    assert code == 0, err
    assert out.split("\n")[:2] == [
        "jax-cpu-predict-bs128-float32-synthetic",
        "jax-cpu-predict-bs256-float32-synthetic",
    ]
    assert "2 of 3 cells to run (1 recorded); nothing was run" in out
    assert listing(tmp_path) == before


def test_resume_through_a_linked_run_folder_is_resolved_once(tmp_path, capsys):
    run = make_run(tmp_path / "results", "r", batches=(64,))
    (tmp_path / "latest").symlink_to(run)
    code, out, err = bench(capsys, "run", "--resume", str(tmp_path / "latest"), "--dry-run")
    assert code == 0 and "2 of 3 cells to run" in out, err


def test_resume_refuses_set(tmp_path, capsys):
    run = make_run(tmp_path / "results", "r", batches=(64,))
    before = listing(tmp_path)
    code, _, err = bench(capsys, "run", "--resume", str(run), "--set", "measure.min_steps=3")
    assert code == 2
    assert "--set does not apply to --resume" in err
    assert listing(tmp_path) == before


def test_resume_of_a_complete_run_says_so_and_changes_nothing(tmp_path, capsys):
    run = make_run(tmp_path / "results", "r", batches=(64, 128, 256))
    before = listing(tmp_path)
    code, out, err = bench(capsys, "run", "--resume", str(run))
    assert code == 0, err
    assert "run r is complete: every planned cell has a record; nothing was run" in " ".join(
        out.split()
    )
    assert listing(tmp_path) == before  # no new timings, no run.json rewrite, no lock file


def test_resume_of_a_complete_run_with_a_failed_cell_exits_as_the_run_did(tmp_path, capsys):
    res = tmp_path / "results"
    run = write_run(
        res,
        "r",
        [record(batch_size=b) for b in (64, 128)] + [record(batch_size=256, status="failed")],
    )
    meta = json.loads((run / RUN_FILE).read_text())
    meta["scenario"]["text"] = SCENARIO
    (run / RUN_FILE).write_text(json.dumps(meta))
    before = listing(tmp_path)
    code, out, _ = bench(capsys, "run", "--resume", str(run))
    assert code == 1
    assert "1 failed (--retry-failed runs them again)" in " ".join(out.split())
    assert listing(tmp_path) == before


# -- real workers -------------------------------------------------------------------------

TOY = """\
name: toy
model: tests.fixtures.toy_model:factory
matrix: {{batch_size: {batches}}}
measure: {{warmup_steps: 1, min_steps: 3, min_seconds: 0.0, max_seconds: 1.0,
          target_rel_ci: 0.5, timeout_s: 120}}
"""


def _wait_for(predicate: Callable[[], object], timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


@pytest.mark.slow
def test_two_resumers_of_one_run_folder_one_measures_the_other_is_refused(tmp_path, worker_env):
    # The first resumer hangs in batch 7's build (tests/fixtures/toy_model.py), holding the
    # lock; the second must be refused before it starts a worker.
    run = make_run(tmp_path / "results", "r", batches=(), scenario=TOY.format(batches="[7]"))
    first = subprocess.Popen(
        bench_cmd("run", "--resume", str(run)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    try:
        _wait_for(lambda: (run / "worker-jax-cpu.log").exists())
        cells_before = (run / CELLS_FILE).read_bytes()
        second = subprocess.run(
            bench_cmd("run", "--resume", str(run)), capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert "Traceback" not in second.stderr
        assert (
            f"{run}: another bench process (pid {first.pid}) is writing this run folder"
            in " ".join(second.stderr.split())
        )
        assert (run / CELLS_FILE).read_bytes() == cells_before
        assert (run / "worker-jax-cpu.log").read_text().count("=== worker") == 1
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 130, out + err
    assert load_run(run).meta["status"] == "interrupted"


@pytest.mark.slow
@pytest.mark.heavy
def test_resume_after_a_crash_mid_write_keeps_every_record(tmp_path, worker_env):
    run = make_run(tmp_path / "results", "r", batches=(), scenario=TOY.format(batches="[4, 5]"))
    done = subprocess.run(bench_cmd("run", "--resume", str(run)), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (run / CELLS_FILE).read_text().splitlines()
    assert len(lines) == 2
    # The run crashed while writing its second record: cut it off, then resume.
    (run / CELLS_FILE).write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    done = subprocess.run(bench_cmd("run", "--resume", str(run)), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    err = " ".join(done.stderr.split())
    assert "cells.jsonl:2: cut-off last record" in err and "cells.jsonl.damaged" in err
    loaded = load_run(run)
    assert len(loaded.cells) == 2 and not loaded.warnings
    assert loaded.cells[json.loads(lines[0])["cell_id"]] == json.loads(lines[0])  # kept as it was
    assert (run / (CELLS_FILE + ".damaged")).read_text() == lines[1][: len(lines[1]) // 2] + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    shutil.rmtree(run)
