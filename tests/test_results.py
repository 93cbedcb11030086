"""Run folders: records survive a round trip, a torn last line, and unknown versions are refused."""

from __future__ import annotations

import json

import pytest

from bench.runfolder import SCHEMA_VERSION, ResultsError, RunWriter, list_runs, load_run


def make_run(tmp_path):
    meta = {
        "scenario": {"name": "demo", "path": "s.yaml", "text": "x", "sha256": "0" * 64},
        "environment": {"frameworks": {}},
    }
    return RunWriter.create(tmp_path, meta)


def record(cell_id: str, status: str = "ok", value: float = 1.0) -> dict:
    return {
        "cell_id": cell_id,
        "key": {"batch_size": 8},
        "status": status,
        "reason": "",
        "metrics": {"examples_per_s": {"value": value, "unit": "examples/s", "method": "m"}},
    }


def test_round_trip_keeps_records_and_metadata(tmp_path):
    writer = make_run(tmp_path)
    writer.append_cell(record("a", value=10.5))
    writer.append_cell(record("b", "skipped"))
    writer.finish("complete")
    run = load_run(writer.path)
    assert run.meta["schema_version"] == SCHEMA_VERSION
    assert run.meta["status"] == "complete"
    assert run.run_id.endswith(run.run_id.split("-")[-1]) and "demo" in run.run_id
    assert run.cells["a"]["metrics"]["examples_per_s"]["value"] == 10.5
    assert run.cells["b"]["status"] == "skipped"
    assert [r.run_id for r in list_runs(tmp_path)] == [run.run_id]


def test_latest_record_of_a_cell_wins(tmp_path):
    writer = make_run(tmp_path)
    writer.append_cell(record("a", "failed"))
    writer.append_cell(record("a", "ok"))  # a resumed run retried it
    assert load_run(writer.path).cells["a"]["status"] == "ok"


def test_torn_last_line_is_ignored_with_a_warning(tmp_path):
    writer = make_run(tmp_path)
    writer.append_cell(record("a"))
    with open(writer.path / "cells.jsonl", "a") as f:
        f.write('{"cell_id": "b", "sta')  # killed mid-write
    run = load_run(writer.path)
    assert list(run.cells) == ["a"]
    assert "truncated last record" in run.warnings[0]


def test_corrupt_middle_line_is_an_error_naming_the_line(tmp_path):
    writer = make_run(tmp_path)
    with open(writer.path / "cells.jsonl", "a") as f:
        f.write("not json\n")
    writer.append_cell(record("a"))
    with pytest.raises(ResultsError, match=r"cells.jsonl:1: not valid JSON"):
        load_run(writer.path)


def test_unknown_schema_version_is_refused_with_the_writer(tmp_path):
    writer = make_run(tmp_path)
    meta = json.loads((writer.path / "run.json").read_text())
    meta.update(schema_version=99, bench_version="9.9")
    (writer.path / "run.json").write_text(json.dumps(meta))
    with pytest.raises(ResultsError, match=r"schema_version 99 \(bench 9.9\)"):
        load_run(writer.path)


def test_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ResultsError, match="not a bench run folder"):
        load_run(tmp_path)
