"""The report's generation section (issue 22, item 6): TTFT and TPOT against the offered rate per
configuration with the SLO's limits drawn, output tokens/s against slots, and a table of the
headline numbers; and the sections made for examples leaving generate cells out.

The records are ``tests.fixtures.generate_runs``: four search cells under p99 TTFT <= 500 ms
and TPOT <= 50 ms, each probed offline and at 2, 4 and 8 requests/s.
"""

from __future__ import annotations

import re

import pytest

from bench.read.runset import load_runs
from bench.report import content
from bench.report.document import Heading, PlotBlock, TableBlock
from bench.report.sections import generation
from tests.fixtures.generate_runs import CONT_S8, RECORDS
from tests.fixtures.runs import record, write_run

NAMES = ["jax continuous s4", "jax continuous s8", "jax static s2", "tensorflow continuous s4"]


@pytest.fixture
def ctx(tmp_path):
    return content.context(load_runs([write_run(tmp_path, "gen", RECORDS)]))


def plots(blocks) -> dict[str, PlotBlock]:
    return {b.title: b for b in blocks if isinstance(b, PlotBlock)}


def legend(svg: str) -> list[str]:
    """The legend's entries: the texts drawn right of the plot area (x beyond 560)."""
    return [t for x, t in re.findall(r'<text x="([\d.]+)" y="[\d.]+" fill="#333">([^<]+)<', svg)
            if float(x) > 560]  # fmt: skip


def polylines(svg: str) -> list[tuple[str, bool, int]]:
    """Each line drawn: its colour, whether dashed, and its number of points."""
    return [
        (color, bool(dash), len(points.split()))
        for points, color, dash in re.findall(
            r'<polyline points="([^"]+)" fill="none" stroke="([^"]+)" stroke-width="2"'
            r'( stroke-dasharray="[^"]+")?/>',
            svg,
        )
    ]


def test_the_section_applies_to_runs_with_generate_cells_only(ctx, tmp_path):
    assert generation.SECTION.anchor == "generation" and generation.applies(ctx)
    other = content.context(load_runs([write_run(tmp_path, "p", [record()])]))
    assert not generation.applies(other)


def test_ttft_and_tpot_against_the_offered_rate_with_the_slo_lines(ctx):
    found = plots(generation.render(ctx))
    ttft = found["decoder generate: TTFT vs offered rate"].svg
    tpot = found["decoder generate: TPOT vs offered rate"].svg
    # a legend entry per configuration (its p99; the p50 shares its colour, dashed) and the
    # limit of the SLO that bounds this latency, and no other
    assert legend(ttft) == [*NAMES, "SLO TTFT p99 500 ms"]
    assert legend(tpot) == [*NAMES, "SLO TPOT p99 50 ms"]
    for svg in (ttft, tpot):
        lines = polylines(svg)
        # per configuration: p99 solid and p50 dashed through its 3 rates; one SLO line
        assert sorted(lines).count(("#000000", True, 2)) == 1
        assert [n for _, dashed, n in lines if not dashed] == [3] * 4
        assert [n for c, dashed, n in lines if dashed and c != "#000000"] == [3] * 4
        assert "offered requests/s (log scale)" in svg and "p99 solid, p50 dashed" in svg


def test_the_slo_line_lies_at_its_limit(ctx):
    svg = plots(generation.render(ctx))["decoder generate: TTFT vs offered rate"].svg
    (slo,) = re.findall(r'points="([^"]+)" fill="none" stroke="#000000"', svg)
    ys = {float(p.split(",")[1]) for p in slo.split()}
    assert len(ys) == 1  # a horizontal line
    # The highest TTFT drawn (continuous s8's p99 at 8 QPS, 1500 ms) lies above 500 ms and the
    # lowest (static s2's p50 at 2 QPS, 50 ms) below it: in SVG, y grows downwards.
    highest = min(float(p.split(",")[1]) for _, pts in _series_points(svg) for p in pts)
    lowest = max(float(p.split(",")[1]) for _, pts in _series_points(svg) for p in pts)
    assert highest < ys.pop() < lowest


def _series_points(svg: str) -> list[tuple[str, list[str]]]:
    return [
        (color, points.split())
        for points, color in re.findall(r'<polyline points="([^"]+)" fill="none" stroke="([^"]+)"', svg)
        if color != "#000000"
    ]  # fmt: skip


def test_tokens_per_second_against_slots_per_framework_and_scheduler(ctx):
    svg = plots(generation.render(ctx))["decoder generate: output tokens/s vs slots"].svg
    assert legend(svg) == ["jax continuous", "jax static", "tensorflow continuous"]
    # jax continuous at 4 and 8 slots: one line of two points; the others one point each
    assert [n for _, _, n in polylines(svg)] == [2]
    for slots in ("2", "4", "8"):
        assert f">{slots}</text>" in svg  # the slot counts measured are the ticks


def test_the_table_holds_each_cells_headline_numbers_and_verdict(ctx):
    blocks = generation.render(ctx)
    (heading,) = [b for b in blocks if isinstance(b, Heading)]
    assert heading.text == "decoder generate (p99 TTFT <= 500 ms and TPOT <= 50 ms)"
    (table,) = [b for b in blocks if isinstance(b, TableBlock)]
    rows = {r[0]: dict(zip(table.headers, r, strict=True)) for r in table.rows}
    assert list(rows) == NAMES
    s4 = rows["jax continuous s4"]
    assert (s4["max QPS"], s4["TTFT p99 ms"], s4["TPOT p99 ms"], s4["out tok/s"]) == (
        "4.00",
        "450",
        "30.0",
        "2,000",
    )
    assert s4["USD / 1M out tok"] == "0.500"  # USD 3.6/h over 2000 tokens/s
    assert s4["SLO"].endswith("✓") and s4["rates"] == "3"
    s8 = rows["jax continuous s8"]
    assert s8["SLO"].endswith("✗") and s8["max QPS"] == "-"
    assert s8["note"] == CONT_S8["reason"]


def test_sections_made_for_examples_leave_generate_cells_out(tmp_path):
    only = content.build(load_runs([write_run(tmp_path, "g", RECORDS)]))
    anchors = [s.anchor for s in only.sections]
    assert "generation" in anchors
    assert "cost-energy" not in anchors and "pareto" not in anchors
    mixed = [*RECORDS, record(usd_per_hour=1.0)]
    report = content.build(load_runs([write_run(tmp_path, "m", mixed)]))
    (cost,) = [s for s in report.sections if s.anchor == "cost-energy"]
    tables = [b for b in cost.blocks if isinstance(b, TableBlock)]
    assert [len(t.rows) for t in tables] == [1]  # the predict cell; no generate row
