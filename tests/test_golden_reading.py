"""Golden files: what users read from the checked-in runs, compared exactly.

The runs under tests/golden/runs/ are real ``bench run`` results of the quickstart scenario (run
twice) and of tests/golden/failures.yaml, trimmed by tests/golden/trim_run.py. Rendering is
deterministic (seeded bootstraps, fixed widths, no clock), so any difference here is a change
in what users see. After an intended change, regenerate and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/test_golden_reading.py
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from bench.read.compare import compare
from bench.read.constraints import parse_all
from bench.read.recommend import recommend
from bench.read.runset import load_runs
from bench.report import compare as compare_render
from bench.report import content, markdown
from bench.report import recommend as recommend_render
from tests.fixtures.runs import fleet

GOLDEN = Path(__file__).parent / "golden"
RUNS = GOLDEN / "runs"
EXPECTED = GOLDEN / "expected"
QUICKSTART = [RUNS / "quickstart-a", RUNS / "quickstart-b"]
ALL = [*QUICKSTART, RUNS / "failures"]


def plain(renderable: object) -> str:
    """Rich output as plain text at a fixed width, trailing blanks dropped."""
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None, force_terminal=False).print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def check(name: str, text: str) -> None:
    path = EXPECTED / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{name} differs from {path} (UPDATE_GOLDEN=1 to accept)"


def test_compare_table():
    result = compare(load_runs(QUICKSTART))
    check("compare-quickstart.txt", plain(compare_render.to_table(result)))


def test_compare_markdown():
    result = compare(load_runs(QUICKSTART))
    check("compare-quickstart.md", compare_render.to_markdown(result))


def test_compare_with_itself_shows_ones():
    result = compare(load_runs([QUICKSTART[0], QUICKSTART[0]], allow_repeats=True))
    text = plain(compare_render.to_table(result))
    check("compare-self.txt", text)
    ratios = [r for g in result.groups for m in g.metrics for r in m.ratios if r is not None]
    assert ratios and all(r.value == 1.0 for r in ratios)
    assert all(r.verdict in (None, "same") for r in ratios)


def test_recommendation_text_and_deploy_yaml():
    runset = load_runs(ALL)
    result = recommend(runset, "throughput", parse_all(["p99_ms<=5"]))
    check("recommend-throughput.txt", plain(recommend_render.to_text(result, runset)))
    check("deploy-throughput.yaml", recommend_render.to_deploy_yaml(result, runset))


def test_markdown_report(tmp_path):
    runset = load_runs(ALL)
    report = content.build(runset)
    out = tmp_path / "report.md"
    written = markdown.write(report, out)
    check("report-quickstart.md", out.read_text())
    assert {p.name for p in written[1:]} == {f"{p.name}.svg" for p in report.plots}
    for path in written[1:]:
        assert path.read_text().startswith("<svg"), path


def test_markdown_report_of_three_machines(tmp_path):
    """Constructed CPU, GPU and TPU VMs: the sections for cost, energy, MFU and input-bound
    cells that today's real CPU runs leave empty."""
    runset = load_runs(fleet(tmp_path / "runs"))
    out = tmp_path / "report.md"
    markdown.write(content.build(runset, "cost"), out)
    check("report-fleet.md", out.read_text())


@pytest.mark.parametrize("name", ["quickstart-a", "quickstart-b", "failures"])
def test_golden_runs_stay_small_and_real(name):
    """~20 samples per cell, recorded by bench run (not hand-written)."""
    runset = load_runs([RUNS / name])
    assert runset.runs[0].meta["command"][1] == "run"
    for cell in runset.cells:
        samples = cell.record.get("samples", {}).get("step_time_s", [])
        assert len(samples) <= 20
