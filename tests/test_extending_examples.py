"""The metric, axis and report-section examples of docs/extending.md are real entries: the metric,
registered as the page says, is read by compare, ``--where`` and the gate with no other edit; the
axis fits the registry beside the others; the section, registered, shows in the report where it
was put. (tests/test_modeldef.py runs the page's example model.)"""

from __future__ import annotations

import json
import re

import bench.axes
import bench.metrics
from bench.axes import AXES, BY_NAME, Axis, cell_id
from bench.cli import main
from bench.metrics import METRICS, Metric, fields, gates, metric
from bench.read.runset import load_runs
from bench.report import content, markdown, sections
from tests.conftest import REPO
from tests.fixtures.runs import record, write_run

GOLDEN_RUNS = REPO / "tests" / "golden" / "runs"

PAGE = REPO / "docs" / "extending.md"


def example(opening: str) -> str:
    """The page's python block that starts with ``opening``, dedented to an expression."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    found = [b for b in blocks if b.lstrip().startswith(opening)]
    assert len(found) == 1, f"docs/extending.md: no single python block starting {opening!r}"
    return found[0].strip().rstrip(",")


def test_the_metric_example_is_read_by_compare_where_and_gate(monkeypatch, tmp_path, capsys):
    entry = eval(example("Metric("), dict(vars(bench.metrics)))  # the page's own code
    assert isinstance(entry, Metric)
    # What register() checks: no metric, field or gate name already taken.
    assert entry.name not in METRICS
    assert not {f.name for f in entry.fields} & {f.name for _, f in fields()}
    assert not {g.name for g in entry.gates} & set(gates())
    monkeypatch.setitem(METRICS, entry.name, entry)

    cells = []
    for batch, seconds in ((32, 12.0), (64, 45.0)):  # one meets first_result_s<=30, one not
        rec = record(batch_size=batch, seed=batch)
        rec["metrics"][entry.name] = metric(seconds, "s", "constructed")
        cells.append(rec)
    run = str(write_run(tmp_path, "20250101-000000-doc-0001", cells))

    assert main(["compare", run, "--format", "json", "--where", "first_result_s<=30"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    rows = [m for g in groups for m in g["metrics"] if m["field"] == "first_result_s"]
    assert [r["values"] for r in rows] == [[12.0]]
    assert rows[0]["label"] == "time to first result"

    assert main(["gate", "--baseline", run, "--candidate", run, "--metric", "first_result",
                 "--format", "json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in report["rows"]} == {"first_result"}
    # one value per process: too few to test without measure.repeats, as the page says
    assert {r["verdict"] for r in report["rows"]} == {"INSUFFICIENT_DATA"}


def test_the_axis_example_fits_the_registry():
    axis = eval(example("Axis("), dict(vars(bench.axes)))  # the page's own code
    assert isinstance(axis, Axis)
    assert axis.name not in BY_NAME
    assert axis.id_slot not in {a.id_slot for a in AXES}
    assert axis.label.format("on") == "remat on"
    key = {"model": "mlp", **{a.name: a.default for a in AXES if not a.conditional}}
    key["input"] = "synthetic"
    with_axis = (*AXES, axis)
    # at its default the id is the one the cell had before the axis existed; changed, it grows
    assert cell_id({**key, "remat": False}, with_axis) == cell_id(key)
    assert cell_id({**key, "remat": True}, with_axis) == cell_id(key) + "-remat"


def test_the_report_section_example_shows_where_it_is_registered(monkeypatch, tmp_path):
    namespace: dict = {}
    exec(example('"""The slowest cells'), namespace)  # the page's own module
    section = namespace["SECTION"]
    assert isinstance(section, sections.ReportSection)
    monkeypatch.setattr(sections, "SECTIONS", list(sections.SECTIONS))  # undone after the test
    sections.register(section, before="problems")

    out = tmp_path / "report.md"
    markdown.write(content.build(load_runs([GOLDEN_RUNS / "quickstart-a"])), out)
    text = out.read_text()
    assert text.index("## Slowest cells") < text.index("## Skipped, failed and invalid cells")
    table = text.split("## Slowest cells")[1].split("##")[0]
    assert table.count("| jax-") + table.count("| tensorflow-") == 5  # the five slowest cells
