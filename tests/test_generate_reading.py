"""The reading side on generate cells (issue 22, item 6): their own SLO (every stated limit at
its percentile), ``--where`` and ``bench recommend`` on TTFT, TPOT, tokens/s and cost per
output token, the deployment file, compare's labels, and the terminal's table and progress line.

The records (``tests.fixtures.generate_runs``) are built so the answers are known: under the
SLO p99 TTFT <= 500 ms and TPOT <= 50 ms, jax continuous s4 has the most output tokens/s
(2000) and the lowest cost per output token; continuous s8 has more (3000) but meets the SLO
at no rate (TTFT p99 700 ms).
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from bench.cli import main
from bench.read.compare import compare
from bench.read.constraints import parse_all
from bench.read.recommend import recommend
from bench.read.runset import load_runs
from bench.read.slo import Slo, slo_at_ms, slo_latency_ms, slo_met, slo_of, verdict
from bench.report.recommend import as_ranked, to_deploy_yaml
from bench.report.terminal import cell_line
from tests.fixtures.generate_runs import CONT_S4, CONT_S8, RECORDS, STATIC_S2, TF_S4
from tests.fixtures.runs import write_run


@pytest.fixture
def gen_run(tmp_path):
    return write_run(tmp_path, "gen", RECORDS)


def winner(rec):
    (choice,) = rec.choices
    return choice.winner


# -- a generate cell's own SLO ---------------------------------------------------------------


def test_a_generate_cells_slo_is_read_from_its_generate_block():
    slo = slo_of(CONT_S4)
    assert slo == Slo(99.0, ttft_ms=500.0, tpot_ms=50.0)
    assert slo.text == "ttft_p99<=500ms,tpot_p99<=50ms"
    assert slo.describe() == "p99 TTFT <= 500 ms and TPOT <= 50 ms"
    # at its reported rate (4 QPS: 8 QPS missed), each limit's figure; the first is the field
    assert slo_at_ms(CONT_S4) == pytest.approx({"ttft_ms": 450.0, "tpot_ms": 30.0})
    assert slo_latency_ms(CONT_S4) == pytest.approx(450.0)
    assert slo_met(CONT_S4) is True and verdict(CONT_S4) == "ttft_p99<=500ms,tpot_p99<=50ms ✓"
    # no rate met: reported at its lowest rate, TTFT p99 700 ms > 500 ms
    assert slo_met(CONT_S8) is False and slo_latency_ms(CONT_S8) == pytest.approx(700.0)


def test_one_limit_missed_is_enough_to_miss():
    rec = copy.deepcopy(CONT_S4)
    rec["metrics"]["tpot_s"]["p99"] = 0.051  # TTFT still within its limit
    assert slo_met(rec) is False


def test_a_limit_alone_and_a_percentile_the_metrics_lack():
    rec = copy.deepcopy(STATIC_S2)
    rec["generate"]["slo"] = {"percentile": 97.0, "tpot_ms": 25.0}
    # p97 is no statistic of the metrics: the reported probe's slo_at has it (TPOT 20 ms)
    assert slo_of(rec).text == "tpot_p97<=25ms"
    assert slo_latency_ms(rec) == pytest.approx(20.0) and slo_met(rec) is True


def test_failed_requests_at_the_percentile_miss_with_no_figure():
    # No rate met: the lowest searched rate is reported, and its p99 request failed.
    rec = copy.deepcopy(CONT_S8)
    rec["metrics"]["ttft_s"].pop("p99")  # infinitely late: no number
    rec["generate"]["probes"][1]["slo_at"]["ttft_s"] = None
    assert slo_latency_ms(rec) is None and slo_met(rec) is False
    # and so do the figures that are known: TPOT p99 40 ms is within its limit
    assert slo_at_ms(rec) == pytest.approx({"ttft_ms": None, "tpot_ms": 40.0})


def test_the_offline_probe_of_a_search_is_not_its_reported_load():
    # Only the offline probe met the SLO: the cell reports its lowest searched rate.
    rec = copy.deepcopy(CONT_S8)
    rec["generate"]["probes"][0].update(meets_slo=True, slo_at={"ttft_s": 0.1, "tpot_s": 0.01})
    rec["metrics"]["ttft_s"].pop("p99")
    assert slo_latency_ms(rec) == pytest.approx(700.0)


@pytest.mark.parametrize(
    "block",
    [
        {"percentile": 99.0},  # no limit
        {"percentile": 99.0, "ttft_ms": -1.0, "tpot_ms": 50.0},
        {"percentile": 99.0, "ttft_ms": "fast"},
        {"percentile": 100.0, "ttft_ms": 500.0},
        "p99",
    ],
)
def test_a_damaged_generate_slo_is_no_slo(block):
    rec = copy.deepcopy(CONT_S4)
    rec["generate"]["slo"] = block
    assert slo_of(rec) is None and slo_met(rec) is None and verdict(rec) == ""


# -- --where and recommend ---------------------------------------------------------------------


def test_recommend_by_tokens_per_s_judges_each_cell_by_its_own_slo(gen_run):
    rec = recommend(load_runs([gen_run]), "tokens_per_s")
    (choice,) = rec.choices
    assert choice.winner.cell_id == CONT_S4["cell_id"]  # s8 has more tokens/s but missed
    assert choice.excluded == {
        "failing each cell's own SLO: p99 TTFT <= 500 ms and TPOT <= 50 ms": 1
    }
    (binding,) = choice.binding
    assert binding.cell.cell_id == CONT_S8["cell_id"] and binding.factor == pytest.approx(1.5)
    assert binding.violation == (
        "TTFT p99 = 700 ms (its SLO: p99 TTFT <= 500 ms and TPOT <= 50 ms)"
    )
    assert choice.objective.partner == "ttft_p99_ms"


def test_recommend_by_cost_under_a_ttft_limit_ranks_cost_per_output_token(gen_run):
    runset = load_runs([gen_run])
    rec = recommend(runset, "cost", parse_all(["ttft_p99_ms<=500"]))
    (choice,) = rec.choices
    # USD 3.6/h: 1000 / tokens_per_s USD per 1M output tokens; s4 at 2000 tokens/s -> 0.5
    assert choice.winner.cell_id == CONT_S4["cell_id"]
    assert choice.winner.number(choice.objective.field) == pytest.approx(0.5)
    assert (choice.objective.label, choice.objective.unit) == (
        "cost / 1M output tokens",
        "USD/1M output tokens",
    )
    assert choice.objective.partner == "output_tokens_per_s"  # not examples/s: none here
    assert as_ranked(rec) == (
        "; generate cells: cost / 1M output tokens (cost_usd_per_million, USD/1M output tokens)"
    )
    assert [p.cell_id for p in choice.pareto] == [CONT_S4["cell_id"]]
    # the typed TTFT limit replaces the cells' own SLO, and the warning says TPOT goes unchecked
    assert rec.implicit == ()
    (warning,) = rec.warnings
    assert "replaces the SLO recorded by 4 generate cells" in warning
    assert "its TPOT limit is no longer checked" in warning


def test_the_deployment_file_carries_the_generate_axes_and_numbers(gen_run):
    runset = load_runs([gen_run])
    doc = yaml.safe_load(to_deploy_yaml(recommend(runset, "tokens_per_s"), runset))
    (deployed,) = doc["deployments"]
    assert {k: deployed[k] for k in ("framework", "device", "precision", "scheduler", "slots")} == {
        "framework": "jax",
        "device": "cpu",
        "precision": "float32",
        "scheduler": "continuous",
        "slots": 4,
    }
    expected = deployed["expected"]
    assert "examples_per_s" not in expected and "examples_per_s_ci95" not in expected
    assert expected["output_tokens_per_s"] == 2000 and expected["max_qps"] == 4
    assert expected["ttft_p99_ms"] == 450 and expected["tpot_p99_ms"] == 30
    assert expected["cost_usd_per_million"] == 0.5
    assert expected["slo"] == "ttft_p99<=500ms,tpot_p99<=50ms"


def test_where_on_the_generate_fields(gen_run, capsys):
    assert main(["results", str(gen_run), "--where", "tpot_p99_ms<25", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["cell_id"] for r in rows] == [STATIC_S2["cell_id"]]
    assert main(["results", str(gen_run), "--where", "slo_met==false", "--format", "json"]) == 0
    assert [r["cell_id"] for r in json.loads(capsys.readouterr().out)] == [CONT_S8["cell_id"]]


def test_throughput_is_a_generate_cells_own_and_a_missing_objective_names_others(gen_run):
    runset = load_runs([gen_run])
    (choice,) = recommend(runset, "throughput").choices  # bench recommend's default
    assert choice.objective.name == "tokens_per_s" and choice.winner.cell_id == CONT_S4["cell_id"]
    (choice,) = recommend(runset, "energy").choices  # no generate cell has an energy reading
    assert choice.winner is None
    assert {"tokens_per_s", "cost"} <= set(choice.instead) and "energy" not in choice.instead


def test_compare_labels_cost_per_output_token_on_generate_rows(gen_run):
    found = compare(load_runs([gen_run]))
    labels = {m.field: m.label for g in found.groups for m in g.metrics}
    assert labels["cost_usd_per_million"] == "cost / 1M output tokens"
    assert labels["ttft_p99_ms"] == "TTFT p99" and "examples_per_s" not in labels


# -- the terminal ------------------------------------------------------------------------------


def test_a_run_of_generate_cells_has_no_empty_example_columns(gen_run, capsys):
    assert main(["results", str(gen_run)]) == 0
    out = capsys.readouterr().out
    assert "examples/s" not in out and "median ms" not in out
    assert "TTFT p99 ms" in out and "out tok/s" in out and "TPOT p99 ms" in out
    assert out.count("✓") == 3 and out.count("✗") == 1  # the SLO column (wrapped when narrow)


def test_the_progress_line_of_a_generate_cell_shows_tokens_and_ttft():
    assert cell_line(CONT_S4).plain == (f"✓ {CONT_S4['cell_id']}  2,000 tok/s  TTFT p99 450 ms")
    assert "tok/s" in cell_line(TF_S4).plain and "ex/s" not in cell_line(TF_S4).plain
