"""A serve cell's own SLO on the reading side (issue 21, item 3): the fields read from its
record, ``--where`` on them, ``bench recommend`` judging each cell by its own SLO, and the SLO
column of ``bench results``, the report and ``bench.results.load``.

The records are constructed so the answer is known by design: three serve configurations
with an SLO of p95 <= 50 ms, where the p95 and the p99 disagree on the winner.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import yaml

from bench import results
from bench.cli import main
from bench.metrics import metric
from bench.read.constraints import parse, parse_all, select
from bench.read.own_slo import OwnSlo, latency_percentiles, overrides
from bench.read.recommend import recommend
from bench.read.runset import load_runs
from bench.read.slo import Slo, slo_latency_ms, slo_met, slo_of, verdict
from bench.report.recommend import explain, to_deploy_yaml, to_markdown
from tests.fixtures.runs import record, write_run

P95_50 = {"percentile": 95.0, "latency_ms": 50.0}


def serve_record(
    max_batch: int,
    rate: float,
    p95_ms: float,
    p99_ms: float,
    *,
    slo: Any = P95_50,
    status: str = "ok",
    flags: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A fixed-rate serve cell answering ``rate`` requests/s with these latencies, shaped as
    ``bench.workloads.serve.cell`` writes one (metrics of the reported rate, one probe)."""
    key = {"model": "mlp", "workload": "serve", "framework": "jax", "device": "cpu",
           "batch_size": 1, "precision": "float32", "input": "synthetic", "arrivals": "poisson",
           "target_qps": rate, "max_batch_size": max_batch, "batch_timeout_ms": 2.0,
           "endpoint": "in_process"}  # fmt: skip
    latency = {"p50": p95_ms / 2e3, "p90": p95_ms * 0.9e-3, "p95": p95_ms / 1e3,
               "p99": p99_ms / 1e3, "p99_9": p99_ms / 1e3}  # fmt: skip
    met = isinstance(slo, dict) and p95_ms <= 50.0
    return {
        "cell_id": f"jax-cpu-serve-q{rate:g}-mb{max_batch}",
        "key": key,
        "status": status,
        "reason": "" if status == "ok" else "the load generator could not keep up",
        "flags": list(flags),
        "metrics": {
            "examples_per_s": metric(rate, "examples/s", "requests answered / s"),
            "request_latency_s": {"unit": "s", "method": "constructed", "n": 500, **latency},
            "cost_per_million_examples_usd": metric(1e6 / rate / 3600, "USD", "constructed"),
        },
        "samples": {},
        "serve": {
            "slo": slo,
            "probes": [
                {
                    "offered_qps": rate,
                    "slo_latency_s": p95_ms / 1e3,
                    "meets_slo": met,
                    "valid": True,
                }
            ],
        },
    }


# Judged by their own SLO (p95 <= 50 ms), mb8 wins: mb32 is faster but its p95 is 70 ms.
# Judged by p99 <= 50 ms, as a user typing the habitual limit would, only mb1 qualifies.
MB1 = serve_record(1, 200.0, p95_ms=30.0, p99_ms=45.0)
MB8 = serve_record(8, 400.0, p95_ms=40.0, p99_ms=90.0)
MB32 = serve_record(32, 600.0, p95_ms=70.0, p99_ms=120.0, flags=("slo_unmet",))


@pytest.fixture
def serve_run(tmp_path):
    return write_run(tmp_path, "serve", [MB1, MB8, MB32])


def only(rec):
    (choice,) = rec.choices
    return choice


# -- reading a record's SLO --------------------------------------------------------------------


def test_the_fields_of_a_serve_cell_are_read_at_its_own_percentile(serve_run):
    cells = {c.key["max_batch_size"]: c for c in load_runs([serve_run]).cells}
    assert cells[8].get("slo") == "p95<=50ms"
    assert cells[8].get("slo_latency_ms") == pytest.approx(40.0)  # its p95, not its p99 (90)
    assert cells[8].get("slo_met") == "true"
    assert cells[32].get("slo_met") == "false" and cells[32].get("slo_latency_ms") == 70.0
    assert verdict(MB8) == "p95<=50ms ✓" and verdict(MB32) == "p95<=50ms ✗"


def test_a_percentile_the_metrics_do_not_hold_is_read_from_the_reported_probe():
    # p97 is no statistic of request_latency_s: the probe's slo_latency_s is that percentile.
    rec = serve_record(8, 400.0, 40.0, 90.0, slo={"percentile": 97, "latency_ms": 60})
    rec["serve"]["probes"][0]["slo_latency_s"] = 0.055
    assert slo_of(rec) == Slo(97.0, 60.0) and slo_of(rec).text == "p97<=60ms"
    assert slo_latency_ms(rec) == pytest.approx(55.0) and slo_met(rec) is True


def test_a_search_cell_is_read_at_its_max_compliant_rate():
    # Probes at 100 (met), 300 (met), 500 (missed): the reported rate is 300 QPS.
    rec = serve_record(8, 300.0, 0.0, 0.0)
    rec["metrics"].pop("request_latency_s")
    rec["serve"]["probes"] = [
        {"offered_qps": q, "slo_latency_s": lat, "meets_slo": ok, "valid": True}
        for q, lat, ok in ((100.0, 0.010, True), (500.0, 0.080, False), (300.0, 0.045, True))
    ]
    assert slo_latency_ms(rec) == pytest.approx(45.0) and slo_met(rec) is True


def test_dropped_requests_at_the_percentile_miss_the_slo_with_no_latency():
    # Infinitely late is no number: the probe's verdict says the SLO was missed.
    rec = serve_record(8, 400.0, 40.0, 90.0)
    rec["metrics"]["request_latency_s"].pop("p95")
    rec["serve"]["probes"][0].update(slo_latency_s=None, meets_slo=False)
    assert slo_latency_ms(rec) is None and slo_met(rec) is False
    cell_view = load_one(rec)
    assert "missed its SLO p95 <= 50 ms" in OwnSlo.of([cell_view]).violation(cell_view)


def test_a_cell_that_is_not_ok_has_no_verdict():
    rec = serve_record(8, 400.0, 40.0, 90.0, status="invalid")
    assert slo_of(rec) is not None and slo_met(rec) is None
    assert verdict(rec) == "p95<=50ms ?"


@pytest.mark.parametrize(
    "slo",
    [
        None,
        "p95<=50ms",
        [95, 50],
        {"percentile": 95},
        {"latency_ms": 50},
        {"percentile": math.nan, "latency_ms": 50},
        {"percentile": 95, "latency_ms": math.inf},
        {"percentile": 95, "latency_ms": -5},
        {"percentile": 95, "latency_ms": 0},
        {"percentile": 0, "latency_ms": 50},
        {"percentile": 100, "latency_ms": 50},
        {"percentile": True, "latency_ms": 50},
        {"percentile": "95", "latency_ms": 50},
        {"percentile": 95, "latency_ms": 1e400},
    ],
)
def test_a_damaged_slo_is_no_slo_and_never_raises(slo):
    rec = serve_record(8, 400.0, 40.0, 90.0, slo=slo)
    assert slo_of(rec) is None
    assert slo_latency_ms(rec) is None and slo_met(rec) is None and verdict(rec) == ""


@pytest.mark.parametrize(
    "rec",
    [
        record(),  # a predict cell: no serve block
        {"key": {}, "serve": None},
        {"key": {}, "serve": ["slo"]},
        {"key": {}, "status": "ok", "serve": {"slo": P95_50, "probes": "many"}},
        {"key": {}, "status": "ok", "serve": {"slo": P95_50, "probes": [None, 3]}},
        {"key": {}, "status": "ok", "metrics": [], "serve": {"slo": P95_50}},
    ],
)
def test_records_without_a_usable_serve_block_are_read_without_a_crash(rec):
    # No latency to read and no verdict to give; the SLO, where usable, still shows.
    assert slo_latency_ms(rec) is None and slo_met(rec) is None
    assert verdict(rec) in ("", "p95<=50ms ?")


def load_one(rec: dict[str, Any]):
    import tempfile
    from pathlib import Path

    (cell,) = load_runs([write_run(Path(tempfile.mkdtemp()), "one", [rec])]).cells
    return cell


# -- --where -------------------------------------------------------------------------------


def test_where_selects_on_the_slo_fields(serve_run):
    cells = load_runs([serve_run]).cells

    def chosen(*expressions: str) -> list[int]:
        return sorted(c.key["max_batch_size"] for c in select(cells, parse_all(expressions)))

    assert chosen("slo_met==true") == [1, 8]
    assert chosen("slo_met==false") == [32]
    assert chosen("slo==p95<=50ms") == [1, 8, 32]
    assert chosen("slo_latency_ms<=35") == [1]
    assert parse("slo_latency_ms<=35").number == 35.0


def test_where_on_a_cell_without_an_slo_does_not_hold(tmp_path):
    # A predict cell has no SLO: slo_met is unknown, which meets neither true nor false.
    runset = load_runs([write_run(tmp_path, "mixed", [record(), MB8])])
    assert [c.key["workload"] for c in select(runset.cells, [parse("slo_met==true")])] == ["serve"]
    assert select(runset.cells, [parse("slo_met==false")]) == []


def test_compare_takes_where_on_the_slo_fields(serve_run, capsys):
    assert main(["compare", str(serve_run), "--where", "slo_met==true", "--format", "json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert sorted(s["cell_id"] for g in groups for s in g["sides"]) == sorted(
        [MB1["cell_id"], MB8["cell_id"]]
    )


# -- recommend -----------------------------------------------------------------------------


def test_recommend_judges_each_serve_cell_by_its_own_p95_slo(serve_run):
    rec = recommend(load_runs([serve_run]), "throughput")
    choice = only(rec)
    # By p95 <= 50 ms mb8 (400 QPS, p95 40 ms) wins; mb32 (600 QPS) misses its p95.
    # Judged on p99 <= 50 ms instead, mb1 would have won (the next test).
    assert choice.winner.key["max_batch_size"] == 8
    assert [k.text for k in rec.implicit] == ["each cell's own SLO: p95 <= 50 ms"]
    assert choice.excluded == {"failing each cell's own SLO: p95 <= 50 ms": 1}
    (binding,) = choice.binding
    assert binding.cell.key["max_batch_size"] == 32 and binding.factor == pytest.approx(1.5)
    assert binding.violation == "p95 = 70 ms (its SLO: p95 <= 50 ms)"
    assert rec.warnings == ()
    assert "each cell's own SLO: p95 <= 50 ms bound the choice" in " ".join(explain(choice))


def test_a_typed_p99_limit_replaces_the_slo_and_is_warned_about(serve_run):
    rec = recommend(load_runs([serve_run]), "throughput", parse_all(["p99_ms<=50"]))
    assert only(rec).winner.key["max_batch_size"] == 1
    assert rec.implicit == ()
    (warning,) = rec.warnings
    assert "--where p99_ms<=50" in warning and "p95 <= 50 ms" in warning
    assert "a different percentile (p99, not p95)" in warning and "3 serve cells" in warning


@pytest.mark.parametrize(
    ("where", "winner", "difference"),
    [
        ("p95_ms<=50", 8, None),  # the recorded SLO, typed again: no warning
        ("latency_p95_ms<=35", 1, "a tighter bound (35 ms, not 50 ms)"),
        ("p95_ms<=80", 32, "a looser bound (80 ms, not 50 ms)"),
        ("slo_latency_ms<=80", 32, "a looser bound (80 ms, not 50 ms)"),
        ("p95_ms>=35", 32, "not an upper bound (>=35 ms)"),
        ("slo_met==true", 8, None),
    ],
)
def test_latency_limits_typed_replace_the_slo_and_warn_where_they_differ(
    serve_run, where, winner, difference
):
    rec = recommend(load_runs([serve_run]), "throughput", parse_all([where]))
    assert only(rec).winner.key["max_batch_size"] == winner
    assert rec.implicit == ()
    if difference is None:
        assert rec.warnings == ()
    else:
        (warning,) = rec.warnings
        assert difference in warning and "p95 <= 50 ms" in warning


def test_limits_on_other_fields_keep_the_slo(serve_run):
    rec = recommend(load_runs([serve_run]), "throughput", parse_all(["examples_per_s<=500"]))
    assert only(rec).winner.key["max_batch_size"] == 8
    assert len(rec.implicit) == 1 and rec.warnings == ()


def test_cells_without_an_slo_are_not_judged_by_one(tmp_path):
    # A predict decision beside the serve one: its constraints stay none.
    runset = load_runs([write_run(tmp_path, "mixed", [record(), MB1, MB8, MB32])])
    rec = recommend(runset, "throughput")
    by_workload = {c.workload: c for c in rec.choices}
    assert by_workload["predict"].constraints == ()
    assert by_workload["predict"].winner is not None
    assert [k.text for k in by_workload["serve"].constraints] == [
        "each cell's own SLO: p95 <= 50 ms"
    ]
    assert by_workload["serve"].winner.key["max_batch_size"] == 8


def test_cells_of_several_slos_are_each_judged_by_their_own(tmp_path):
    # The same configurations measured under p99 <= 100 ms in another run on another host:
    # there mb32 (p99 120 ms) still misses, mb8 (p99 90 ms) meets, and wins on throughput.
    slo99 = {"percentile": 99.0, "latency_ms": 100.0}
    other = [serve_record(8, 450.0, 40.0, 90.0, slo=slo99),
             serve_record(32, 650.0, 70.0, 120.0, slo=slo99)]  # fmt: skip
    for r in other:
        r["serve"]["probes"][0].update(slo_latency_s=r["metrics"]["request_latency_s"]["p99"])
    a = write_run(tmp_path, "a", [MB1, MB8, MB32], hostname="vm-a")
    b = write_run(tmp_path, "b", other, hostname="vm-b", cpu="AMD EPYC")
    rec = recommend(load_runs([a, b]), "throughput")
    choice = only(rec)
    assert (choice.winner.host.label, choice.winner.key["max_batch_size"]) == ("vm-b", 8)
    assert rec.implicit[0].text == "each cell's own SLO: p95 <= 50 ms, p99 <= 100 ms"
    warnings = overrides(parse_all(["p99_ms<=100"]), load_runs([a, b]).cells)
    assert len(warnings) == 1 and "p95 <= 50 ms" in warnings[0]  # p99 <= 100 ms is the same


def test_nothing_meeting_its_slo_names_the_closest(tmp_path):
    runset = load_runs([write_run(tmp_path, "slow", [MB32])])
    choice = only(recommend(runset, "throughput"))
    assert choice.winner is None
    (closest,) = choice.closest
    assert closest.violations == ("p95 = 70 ms (its SLO: p95 <= 50 ms)",)
    assert closest.excess == pytest.approx(0.4)  # 70 ms is 40% over 50 ms


def test_the_deployment_file_says_which_slo_was_applied(serve_run):
    runset = load_runs([serve_run])
    doc = yaml.safe_load(to_deploy_yaml(recommend(runset, "throughput"), runset))
    assert doc["constraints"] == ["each cell's own SLO: p95 <= 50 ms"]
    (deployed,) = doc["deployments"]
    assert deployed["expected"]["slo"] == "p95<=50ms"
    assert deployed["expected"]["slo_latency_ms"] == 40


def test_the_markdown_carries_the_warning(serve_run):
    runset = load_runs([serve_run])
    md = to_markdown(recommend(runset, "throughput", parse_all(["p99_ms<=50"])), runset)
    assert "- warning: --where p99_ms\\<=50 replaces the SLO" in md


def test_latency_fields_are_found_in_the_metric_registry():
    found = latency_percentiles()
    assert found["p99_ms"] == 99.0 and found["latency_p95_ms"] == 95.0
    assert found["latency_p99_9_ms"] == 99.9 and found["slo_latency_ms"] is None
    assert "median_ms" not in found and "examples_per_s" not in found


def test_recommend_cli_prints_the_implicit_slo_and_warns_on_stderr(serve_run, capsys):
    assert main(["recommend", str(serve_run)]) == 0
    captured = capsys.readouterr()
    assert "constraints: each cell's own SLO: p95 <= 50 ms" in captured.out
    assert "warning" not in captured.err
    assert main(["recommend", str(serve_run), "--where", "p99_ms<=50"]) == 0
    captured = capsys.readouterr()
    assert "constraints: p99_ms<=50\n" in captured.out
    assert "warning: --where p99_ms<=50 replaces the SLO recorded by 3 serve cells" in (
        " ".join(captured.err.split())
    )


# -- tables and frames -------------------------------------------------------------------------


def test_results_table_shows_whether_each_cell_met_its_own_slo(serve_run, capsys):
    assert main(["results", str(serve_run)]) == 0
    out = capsys.readouterr().out
    assert "SLO" in out
    assert out.count("p95<=50ms ✓") == 2 and out.count("p95<=50ms ✗") == 1


def test_results_table_of_a_run_without_an_slo_has_no_slo_column(tmp_path, capsys):
    assert main(["results", str(write_run(tmp_path, "p", [record()]))]) == 0
    assert "SLO" not in capsys.readouterr().out


def test_the_report_shows_each_serve_cells_slo_verdict(serve_run, tmp_path):
    out = tmp_path / "report.md"
    assert main(["report", str(serve_run), "--format", "md", "-o", str(out)]) == 0
    text = out.read_text()
    assert "### mlp serve (p95 \\<= 50 ms)" in text
    assert "| SLO |" in text
    assert text.count("p95\\<=50ms ✓") == 2 and text.count("p95\\<=50ms ✗") == 1
    assert "Constraint: each cell's own SLO: p95 \\<= 50 ms." in text


def test_the_frame_has_the_slo_columns(serve_run, tmp_path):
    df = results.load([serve_run, write_run(tmp_path, "p", [record()])])
    assert list(df.columns[-3:]) == ["slo", "slo_met", "slo_latency_ms"]
    assert str(df["slo_met"].dtype) == "boolean" and df["slo_latency_ms"].dtype == "float64"
    assert df.attrs["units"]["slo_latency_ms"] == "ms"
    by_id = df.set_index("cell_id")
    assert by_id.loc[MB8["cell_id"], "slo"] == "p95<=50ms"
    assert bool(by_id.loc[MB8["cell_id"], "slo_met"]) is True
    assert bool(by_id.loc[MB32["cell_id"], "slo_met"]) is False
    assert by_id.loc[MB8["cell_id"], "slo_latency_ms"] == pytest.approx(40.0)
    predict = df[df["workload"] == "predict"].iloc[0]
    assert predict["slo"] is None and predict["slo_met"] is results_na()
    assert math.isnan(predict["slo_latency_ms"])


def results_na():
    import pandas as pd

    return pd.NA


def test_damaged_slos_read_as_none_on_every_reading_command(tmp_path, capsys):
    # NaN, negative and overflowing SLOs in a run folder: no SLO column, no implicit
    # constraint, and no command fails.
    bad = [
        serve_record(8, 400.0, 40.0, 90.0, slo={"percentile": math.nan, "latency_ms": 50}),
        serve_record(1, 200.0, 30.0, 45.0, slo={"percentile": 95, "latency_ms": -3}),
        serve_record(32, 600.0, 70.0, 120.0, slo={"percentile": 95, "latency_ms": 1e400}),
    ]
    run = str(write_run(tmp_path, "bad", bad))
    assert main(["results", run]) == 0
    assert "SLO" not in capsys.readouterr().out
    assert main(["recommend", run]) == 0
    out = capsys.readouterr().out
    assert "constraints: none" in out and "Best throughput: 600.0 QPS" in out
    report = tmp_path / "r.md"
    assert main(["report", run, "--format", "md", "-o", str(report)]) == 0
    assert "### mlp serve (no SLO recorded)" in report.read_text()
    capsys.readouterr()
    assert main(["results", run, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["slo"], r["slo_met"], r["slo_latency_ms"]) for r in rows] == [(None, None, None)] * 3


def test_results_takes_where_on_the_slo_fields(serve_run, capsys):
    assert main(["results", str(serve_run), "--where", "slo_met==false"]) == 0
    out = capsys.readouterr().out
    assert "p95<=50ms ✗" in out and "✓" not in out
    assert main(["results", str(serve_run), "--where", "slo_met==true", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["cell_id"] for r in rows) == sorted([MB1["cell_id"], MB8["cell_id"]])
    assert main(["results", str(serve_run), "--where", "slo_latency_ms<=10"]) == 0
    assert "no cell meets slo_latency_ms<=10" in capsys.readouterr().out
    assert main(["results", str(serve_run), "--where", "slo_met<1"]) == 2
    assert "slo_met is text" in capsys.readouterr().err
    assert main(["results", "--where", "slo_met==true"]) == 2
