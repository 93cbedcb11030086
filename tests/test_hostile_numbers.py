"""Non-finite and impossible numbers never reach a verdict (issue 20, invariant 6).

A record edited by hand (or by an older bench) holding NaN, an infinity, a number that
overflows the first sum (1.7e308, 10**400) or a time no clock gives (zero, negative) makes
its cell ``invalid`` on every reading path, with the field named: ``bench results`` shows the
status, ``compare`` and ``recommend`` leave it out of claims, ``export`` writes no invalid cell,
``baseline save`` keeps it as invalid, and the gate gives it no verdict. The gate compares
cells of the same model only. In-process, on constructed run folders.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.cli import main
from tests.fixtures.runs import record, write_run

BAD = "jax-cpu-predict-bs128-float32-synthetic"  # the damaged cell
GOOD = "jax-cpu-predict-bs64-float32-synthetic"


def _steps(change: Callable[[list], None]) -> Callable[[dict], None]:
    return lambda rec: change(rec["samples"]["step_time_s"])


def _set(i: int, value: object) -> Callable[[list], None]:
    return lambda steps: steps.__setitem__(i, value)


# damage -> (how the record is changed, the field the reason names)
DAMAGE: dict[str, tuple[Callable[[dict], None], str]] = {
    "NaN sample": (_steps(_set(3, float("nan"))), "samples.step_time_s[3]"),
    "infinite sample": (_steps(_set(3, float("inf"))), "samples.step_time_s[3]"),
    "every sample infinite": (
        _steps(lambda s: s.__setitem__(slice(None), [float("inf")] * len(s))),
        "samples.step_time_s[0]",
    ),
    "overflowing samples (1.7e308)": (
        _steps(lambda s: s.__setitem__(slice(None), [1.7e308] * len(s))),
        "samples.step_time_s[0]",
    ),
    "integer sample 10**400": (_steps(_set(3, 10**400)), "samples.step_time_s[3]"),
    "zero step time": (_steps(_set(3, 0.0)), "samples.step_time_s[3]"),
    "negative step time": (_steps(_set(3, -0.01)), "samples.step_time_s[3]"),
    "negative warm-up time": (
        lambda rec: rec["samples"]["warmup_s"].__setitem__(0, -1.0),
        "samples.warmup_s[0]",
    ),
    "infinite throughput": (
        lambda rec: rec["metrics"]["examples_per_s"].update(value=float("inf")),
        "metrics.examples_per_s.value",
    ),
    "throughput 10**400": (
        lambda rec: rec["metrics"]["examples_per_s"].update(value=10**400),
        "metrics.examples_per_s.value",
    ),
    "median NaN": (
        lambda rec: rec["metrics"]["step_time_s"].update(median=float("nan")),
        "metrics.step_time_s.median",
    ),
}


def damaged_run(root: Path, damage: str) -> Path:
    """A run of two ok cells (batch 64 and 128), the second damaged, written as json writes
    it (NaN and Infinity as the non-standard words a hand edit leaves)."""
    bad = record(batch_size=128, median_s=0.002)
    DAMAGE[damage][0](bad)
    return write_run(root, "damaged", [record(batch_size=64, median_s=0.01), bad])


def listing(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = (Path(dirpath) / name).lstat()
            found[str(Path(dirpath, name).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def _results(capsys, run_dir: Path, out: Path) -> None:
    code, text, err = run(capsys, "results", str(run_dir), "--format", "csv")
    assert code == 0, err
    rows = {r["cell_id"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows[BAD]["status"] == "invalid" and rows[GOOD]["status"] == "ok", text


def _cell(capsys, run_dir: Path, out: Path) -> None:
    code, text, err = run(capsys, "results", str(run_dir), "--cell", BAD)
    assert code == 0, err
    assert "invalid" in text and "stored as null" in " ".join(text.split())


def _compare(capsys, run_dir: Path, out: Path) -> None:
    code, text, err = run(capsys, "compare", str(run_dir), str(run_dir), "--format", "md")
    assert code == 0, err
    cells = [c.strip().lower() for line in text.splitlines() if line.startswith("|")
             for c in line.split("|")]  # fmt: skip
    assert "invalid" in text and not {"nan", "inf", "-inf", "infinity"} & set(cells), text


def _recommend(capsys, run_dir: Path, out: Path) -> None:
    code, text, err = run(capsys, "recommend", str(run_dir))
    assert code == 0, err
    joined = " ".join(text.split())
    assert "best batch 64 on vm" in joined and "1 invalid" in joined


def _report(capsys, run_dir: Path, out: Path) -> None:
    code, _, err = run(capsys, "report", str(run_dir), "-o", str(out / "r.html"))
    assert code == 0, err
    html = (out / "r.html").read_text()
    assert "invalid" in html
    assert not {">nan<", ">inf<", ">infinity<"} & {w.lower() for w in html.split()}


def _export(capsys, run_dir: Path, out: Path) -> None:
    code, _, err = run(capsys, "export", str(run_dir), "-o", str(out / "e.json"), "--include-data")
    assert code == 0, err
    doc = json.loads((out / "e.json").read_text(), parse_constant=pytest.fail)
    assert [b["name"] for b in doc["benchmarks"]] == [GOOD]  # no invalid cell exported


def _baseline(capsys, run_dir: Path, out: Path) -> None:
    code, _, err = run(capsys, "baseline", "save", str(run_dir), "-o", str(out / "b.json"))
    assert code == 0, err
    doc = json.loads((out / "b.json").read_text(), parse_constant=pytest.fail)
    assert doc["cells"][BAD]["status"] == "invalid" and doc["cells"][BAD]["quantities"] == {}
    assert doc["cells"][GOOD]["status"] == "ok"


def _gate(capsys, run_dir: Path, out: Path) -> None:
    code, text, err = run(capsys, "gate", "--baseline", str(run_dir), "--candidate",
                          str(run_dir), "--format", "json")  # fmt: skip
    assert code == 0, err
    rows = {r["cell_id"]: r for r in json.loads(text)["rows"]}
    assert rows[BAD]["verdict"] == "INSUFFICIENT_DATA" and "invalid" in rows[BAD]["reason"]
    assert rows[GOOD]["verdict"] != "INSUFFICIENT_DATA"


READERS = {
    "results": _results,
    "results --cell": _cell,
    "compare": _compare,
    "recommend": _recommend,
    "report": _report,
    "export": _export,
    "baseline save": _baseline,
    "gate": _gate,
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_an_unusable_number_makes_the_cell_invalid_on_every_reading_path(
    tmp_path, capsys, damage, reader
):
    run_dir = damaged_run(tmp_path / "results", damage)
    out = tmp_path / "out"
    out.mkdir()
    before = listing(tmp_path / "results")
    READERS[reader](capsys, run_dir, out)
    assert listing(tmp_path / "results") == before  # the run itself is left as it was


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_the_reason_names_the_field(tmp_path, damage):
    from bench.runfolder import load_run

    found = load_run(damaged_run(tmp_path, damage)).cells[BAD]
    assert found["status"] == "invalid" and DAMAGE[damage][1] in found["reason"]


# -- the gate compares cells of one model only ----------------------------------------------


def test_the_gate_never_fails_on_a_cell_of_another_model(tmp_path, capsys):
    base = write_run(tmp_path / "r", "base", [record(batch_size=64), record(batch_size=128)])
    # The candidate's bs128 cell is another model, ten times slower: not a regression of it.
    cand = write_run(tmp_path / "r", "cand", [
        record(batch_size=64),
        record(batch_size=128, median_s=0.1, model="resnet"),
    ])  # fmt: skip
    before = listing(tmp_path)
    code, text, err = run(capsys, "gate", "--baseline", str(base), "--candidate", str(cand),
                          "--format", "json")  # fmt: skip
    assert code == 0, err
    rows = {r["cell_id"]: r for r in json.loads(text)["rows"]}
    assert rows[BAD]["verdict"] == "INSUFFICIENT_DATA"
    assert "baseline model 'mlp', candidate model 'resnet'" in rows[BAD]["reason"]
    assert listing(tmp_path) == before


def test_the_gate_refuses_sides_of_different_models_entirely(tmp_path, capsys):
    base = write_run(tmp_path / "r", "base", [record(batch_size=64)])
    cand = write_run(tmp_path / "r", "cand", [record(batch_size=64, median_s=1.0, model="resnet")])
    code, _, err = run(capsys, "gate", "--baseline", str(base), "--candidate", str(cand))
    assert code == 2
    assert "no cell is of the same model" in err and "'mlp'" in err and "'resnet'" in err
