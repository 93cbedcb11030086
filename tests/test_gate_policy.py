"""Per-cell gate policies: defaults, a policy file, flags, and the order they apply in."""

from __future__ import annotations

import pytest

from bench.gate.baseline import METRICS
from bench.gate.decision import GatePolicy
from bench.gate.policy import PolicyError, build_config, parse_setting, percent


def test_defaults_are_the_documented_ones():
    config = build_config(None, {}, METRICS)
    assert config.default == GatePolicy()
    assert (config.default.threshold, config.default.alpha, config.default.min_samples) == (
        0.10, 0.01, 10,
    )  # fmt: skip
    assert config.policy_for("any", "throughput", True).higher_is_better


def test_order_file_then_plain_flags_then_file_rules_then_cell_flags(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "threshold: 0.3\nalpha: 0.05\nmetrics: [step_time, compile_time]\nrules:\n"
        "  - cells: 'tensorflow-*'\n    threshold: 0.2\n"
        "  - metric: compile_time\n    min_samples: 5\n"
    )
    flags = {"threshold": ["0.15", "tensorflow-gpu-*=0.25"], "alpha": [], "min_samples": []}
    config = build_config(policy, flags, METRICS)
    assert config.metrics == ("step_time", "compile_time")
    # plain flag beats the file's top level
    assert config.policy_for("jax-cpu-x", "step_time", False).threshold == 0.15
    assert config.policy_for("jax-cpu-x", "step_time", False).alpha == 0.05
    # a file rule refines the default
    assert config.policy_for("tensorflow-cpu-x", "step_time", False).threshold == 0.2
    # a per-cell flag comes last
    assert config.policy_for("tensorflow-gpu-x", "step_time", False).threshold == 0.25
    # metric-scoped rule
    assert config.policy_for("jax-cpu-x", "compile_time", False).min_samples == 5
    assert config.policy_for("jax-cpu-x", "step_time", False).min_samples == 10
    assert [r.source for r in config.rules] == [f"{policy} rule 1", f"{policy} rule 2",
                                                "--threshold"]  # fmt: skip


def test_parse_setting():
    assert parse_setting("threshold", "0.2") == (None, 0.2)
    assert parse_setting("threshold", "jax-*=0.2") == ("jax-*", 0.2)
    assert parse_setting("min_samples", "*predict*=5") == ("*predict*", 5)
    with pytest.raises(PolicyError, match="expected an integer"):
        parse_setting("min_samples", "2.5")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("threshold: -1\n", "threshold: Input should be greater than 0"),
        ("rules:\n  - cell: x\n", "rules.0.cell: Extra inputs are not permitted"),
        ("metrics: [speed]\n", "unknown metric 'speed'"),
        ("threshold: [0.1\n", ":2: invalid YAML"),  # the stream ends on line 2
    ],
)
def test_bad_policy_files_name_the_problem(tmp_path, text, message):
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    with pytest.raises(PolicyError, match=message.replace("[", r"\[")):
        build_config(policy, {}, METRICS)


def test_bad_flag_values_are_refused_up_front():
    with pytest.raises(PolicyError, match="alpha must lie in"):
        build_config(None, {"alpha": ["x-*=2"]}, METRICS)
    with pytest.raises(PolicyError, match="cannot read"):
        build_config("/nonexistent/policy.yaml", {}, METRICS)


def test_percent_reads_like_people_write_it():
    assert (percent(0.1), percent(0.125), percent(0.2)) == ("10%", "12.5%", "20%")
