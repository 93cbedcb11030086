"""--where expressions: what parses, what each means, and clear errors for the rest."""

from __future__ import annotations

import pytest

from bench.read.constraints import ConstraintError, parse, select
from bench.read.runset import load_runs
from tests.fixtures.runs import record, write_run


@pytest.mark.parametrize(
    ("text", "field", "op", "number", "words"),
    [
        ("p99_ms<=50", "p99_ms", "<=", 50.0, ()),
        (" memory_gb < 16.5 ", "memory_gb", "<", 16.5, ()),
        ("batch_size>=1e3", "batch_size", ">=", 1000.0, ()),
        ("device!=tpu", "device", "!=", None, ("tpu",)),
        ("workload=predict", "workload", "==", None, ("predict",)),
        ("device==GPU|tpu", "device", "==", None, ("gpu", "tpu")),
    ],
)
def test_parses(text, field, op, number, words):
    c = parse(text)
    assert (c.field, c.op, c.number, c.words) == (field, op, number, words)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p99_ms", "expected FIELD OP VALUE"),
        ("p99_ms<<50", "p99_ms is a number in ms; got '<50'"),
        ("p99<=50", "unknown field 'p99'; did you mean p99_ms?"),
        ("p99_ms<=fast", "p99_ms is a number in ms; got 'fast'"),
        ("p99_ms<=nan", "finite number"),
        ("device<=gpu", "device is text; compare it with == or !="),
        ("device==gpu|", "empty value"),
        ("__import__('os')==1", "expected FIELD OP VALUE"),
        ("", "expected FIELD OP VALUE"),
    ],
)
def test_malformed_expressions_say_why(text, message):
    with pytest.raises(ConstraintError) as exc:
        parse(text)
    assert message in str(exc.value)


def test_unknown_values_do_not_satisfy_limits(tmp_path):
    run = write_run(
        tmp_path, "r", [record(batch_size=64, watts=100.0), record(batch_size=128)]
    )  # no energy measured
    cells = load_runs([run]).cells
    chosen = select(cells, [parse("energy_kwh_per_million<=1")])
    assert [c.key["batch_size"] for c in chosen] == [64]
    assert parse("energy_kwh_per_million<=1").violation(cells[1]) == (
        "energy_kwh_per_million unknown"
    )
    assert [c.key["batch_size"] for c in select(cells, [parse("batch_size>64")])] == [128]
