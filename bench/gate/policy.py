"""The gate's thresholds per cell and metric: defaults, a policy file, and command-line flags.

Every cell starts from ``GatePolicy()``'s defaults (T = 10%, alpha = 0.01, 10 samples per
side; see ``bench.gate.GatePolicy`` for why). Settings apply in this order, later ones winning:

1. the policy file's top-level ``threshold``, ``alpha``, ``min_samples``;
2. the plain flags ``--threshold 0.15``, ``--alpha 0.05``, ``--min-samples 5``;
3. the policy file's ``rules``, in file order; a rule applies to the cells whose id matches its
   ``cells`` glob (fnmatch, case-sensitive; default ``*``) and, when it names one, to that
   ``metric`` only;
4. the per-cell flags ``--threshold 'tensorflow-*=0.2'`` (GLOB=VALUE), in command-line order.

A policy file (YAML)::

    threshold: 0.10
    metrics: [step_time, throughput]       # the default for --metric
    rules:
      - cells: "tensorflow-*"              # noisier on our runners
        threshold: 0.20
      - metric: compile_time               # with measure.repeats: 5
        min_samples: 5

Specific beats general: a plain flag changes the default, and rules still refine it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.gate.decision import GatePolicy
from bench.limits import (
    MAX_GATE_SAMPLES,
    MAX_THRESHOLD,
    InputFileError,
    count,
    load_yaml,
    read_text_file,
)

SETTINGS = ("threshold", "alpha", "min_samples")


def percent(fraction: float) -> str:
    """0.1 -> "10%", 0.125 -> "12.5%": thresholds as people write them."""
    return f"{fraction * 100:.4g}%"


class PolicyError(Exception):
    """A policy file or flag that cannot be used; the message names the file or flag."""


@dataclass(frozen=True)
class PolicyRule:
    """Settings for the cells matching ``cells`` (and ``metric``, when given)."""

    cells: str = "*"
    metric: str | None = None
    threshold: float | None = None
    alpha: float | None = None
    min_samples: int | None = None
    source: str = ""  # where the rule came from, for the report

    def matches(self, cell_id: str, metric: str) -> bool:
        return fnmatchcase(cell_id, self.cells) and self.metric in (None, metric)

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTINGS if getattr(self, name) is not None}

    def describe(self) -> str:
        shown = {
            "threshold": lambda v: f"threshold {percent(v)}",
            "alpha": lambda v: f"alpha {v:g}",
            "min_samples": lambda v: f"at least {v} samples",
        }
        what = ", ".join(shown[k](v) for k, v in self.settings().items())
        scope = f"cells {self.cells}" + (f", metric {self.metric}" if self.metric else "")
        return f"{scope}: {what} ({self.source})"


@dataclass(frozen=True)
class GateConfig:
    """The default policy, the rules that refine it, and the metrics to gate."""

    default: GatePolicy
    rules: tuple[PolicyRule, ...] = ()
    metrics: tuple[str, ...] | None = None

    def policy_for(self, cell_id: str, metric: str, higher_is_better: bool) -> GatePolicy:
        policy = replace(self.default, higher_is_better=higher_is_better)
        for rule in self.rules:
            if rule.matches(cell_id, metric):
                policy = replace(policy, **rule.settings())
        return policy


class _Strict(BaseModel):
    # .nan and .inf are floats in YAML: a NaN threshold would make every comparison false.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _RuleModel(_Strict):
    cells: str = "*"
    metric: str | None = None
    threshold: float | None = Field(None, gt=0, le=MAX_THRESHOLD)
    alpha: float | None = Field(None, gt=0, lt=1)
    min_samples: count(MAX_GATE_SAMPLES, ge=2) | None = None


class _PolicyModel(_Strict):
    threshold: float | None = Field(None, gt=0, le=MAX_THRESHOLD)
    alpha: float | None = Field(None, gt=0, lt=1)
    min_samples: count(MAX_GATE_SAMPLES, ge=2) | None = None
    metrics: list[str] | None = Field(None, min_length=1)
    rules: list[_RuleModel] = []


# A policy is a few lines: a larger file is damaged or not a policy at all.
MAX_POLICY_BYTES = 2**20


def _read_yaml(path: Path) -> Any:
    try:
        text = read_text_file(path, "a policy file", MAX_POLICY_BYTES)
    except InputFileError as exc:
        raise PolicyError(str(exc)) from None
    try:
        return load_yaml(text)  # bounded: aliases, nesting and size (bench.limits)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise PolicyError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None


def load_policy_file(path: str | Path, known_metrics: Iterable[str]) -> _PolicyModel:
    path = Path(path)
    data = _read_yaml(path)
    try:
        model = _PolicyModel.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise PolicyError("\n".join(problems)) from None
    known = set(known_metrics)
    named = [*(model.metrics or []), *(r.metric for r in model.rules if r.metric)]
    unknown = [m for m in named if m not in known]
    if unknown:
        raise PolicyError(
            f"{path}: unknown metric {unknown[0]!r}; expected one of {', '.join(sorted(known))}"
        )
    return model


def parse_setting(flag: str, text: str) -> tuple[str | None, float | int]:
    """``0.2`` -> (None, 0.2); ``'tensorflow-*=0.2'`` -> ('tensorflow-*', 0.2)."""
    glob, sep, value = text.rpartition("=")
    number: float | int
    try:
        number = int(value) if flag == "min_samples" else float(value)
    except ValueError:
        kind = "an integer" if flag == "min_samples" else "a number"
        raise PolicyError(
            f"--{flag.replace('_', '-')} {text!r}: expected {kind} or CELL_GLOB={kind.split()[-1]}"
        ) from None
    if not math.isfinite(number):
        # float("nan") parses, and every comparison with NaN is false: a tenfold slowdown
        # would pass the gate as INCONCLUSIVE.
        raise PolicyError(f"--{flag.replace('_', '-')} {text!r}: expected a finite number")
    return (glob if sep else None), number


def build_config(
    policy_file: str | Path | None,
    flags: dict[str, Sequence[str]],
    known_metrics: Iterable[str],
) -> GateConfig:
    """Combine defaults, the policy file and the flags (``{"threshold": ["0.2", "tf-*=0.3"]}``)
    in the order of the module docstring; PolicyError on any bad value."""
    base: dict[str, Any] = {}
    file_rules: list[PolicyRule] = []
    metrics = None
    if policy_file is not None:
        model = load_policy_file(policy_file, known_metrics)
        base.update({k: getattr(model, k) for k in SETTINGS if getattr(model, k) is not None})
        metrics = tuple(model.metrics) if model.metrics else None
        file_rules = [
            PolicyRule(**r.model_dump(), source=f"{policy_file} rule {i}")
            for i, r in enumerate(model.rules, 1)
        ]
    flag_rules: list[PolicyRule] = []
    for name in SETTINGS:
        for text in flags.get(name, ()):
            glob, value = parse_setting(name, text)
            if glob is None:
                base[name] = value
            else:
                flag = f"--{name.replace('_', '-')}"
                flag_rules.append(PolicyRule(cells=glob, **{name: value}, source=flag))  # type: ignore[arg-type]
    try:
        default = GatePolicy(**base)
        for rule in [*file_rules, *flag_rules]:
            replace(default, **rule.settings())  # checks every value once, up front
    except ValueError as exc:
        raise PolicyError(f"gate policy: {exc}") from None
    return GateConfig(default, tuple(file_rules + flag_rules), metrics)


def describe_policy(policy: GatePolicy) -> dict[str, Any]:
    """The user-facing settings of a policy, for reports."""
    keep = ("threshold", "alpha", "min_samples", "confidence", "n_boot", "seed")
    return {f.name: getattr(policy, f.name) for f in fields(policy) if f.name in keep}
