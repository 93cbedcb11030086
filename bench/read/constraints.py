"""``--where`` expressions: ``FIELD OP VALUE``, such as ``p99_ms<=50`` or ``device!=tpu``.

A deliberately small language, parsed by a regular expression and never evaluated as code:
a field from ``bench.read.runset.fields()``, one of ``<= >= < > == !=`` (``=`` means ``==``), and a
value. Number fields take a number in the field's unit; text fields take a word, or several
joined by ``|`` (``device==gpu|tpu``), compared case-insensitively, and only with ``==``/``!=``.
Several ``--where`` options must all hold.

A cell whose field is unknown (a metric the run could not measure, such as energy on a TPU)
does not satisfy a constraint on it: a budget cannot be shown to be met by a number that does
not exist. ``check`` says which constraints a cell breaks, so a recommendation can name the
cells closest to meeting them.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bench.read.runset import CellView, fields

_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>|=)\s*(\S.*?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}


class ConstraintError(ValueError):
    """A malformed expression; the message quotes it and says what was expected."""


@dataclass(frozen=True)
class Constraint:
    field: str
    op: str
    number: float | None  # for number fields
    words: tuple[str, ...]  # for text fields, lower case

    @property
    def text(self) -> str:
        value = _fmt_number(self.number) if self.number is not None else "|".join(self.words)
        return f"{self.field}{self.op}{value}"

    def holds(self, cell: CellView) -> bool:
        return self.violation(cell) is None

    def holds_number(self, value: float) -> bool:
        """Whether ``value`` meets this numeric limit (a bound of the field, say)."""
        return self.number is not None and _OPS[self.op](value, self.number)

    def violation(self, cell: CellView) -> str | None:
        """None when the cell satisfies this constraint, else why not (for people)."""
        value = cell.get(self.field)
        if value is None:
            return f"{self.field} unknown"
        if self.number is not None:
            assert isinstance(value, float)
            if _OPS[self.op](value, self.number):
                return None
            return (
                f"{self.field} = {_fmt_number(value)} (needs {self.op}{_fmt_number(self.number)})"
            )
        found = str(value).lower() in self.words
        if found == (self.op == "=="):
            return None
        return f"{self.field} = {value}"

    def excess(self, cell: CellView) -> float:
        """How far the cell is from meeting this constraint, relative to the limit (0 when met).

        Used to rank the cells closest to feasible: 0.2 is "20% over the limit". A broken text
        constraint or an unknown value counts as 1, as far off as a number twice the limit.
        """
        if self.holds(cell):
            return 0.0
        value = cell.get(self.field)
        if self.number is None or not isinstance(value, float):
            return 1.0
        return abs(value - self.number) / max(abs(self.number), 1e-12)


def _fmt_number(value: float) -> str:
    return f"{value:g}"


def parse(expression: str) -> Constraint:
    """One expression; ConstraintError with the reason and an example when malformed."""
    match = _EXPR.match(expression)
    if not match:
        raise ConstraintError(
            f"--where {expression!r}: expected FIELD OP VALUE with OP one of "
            "<= >= < > == !=, e.g. p99_ms<=50 or device!=tpu"
        )
    name, op, raw = match.groups()
    op = "==" if op == "=" else op
    known = fields()
    spec = known.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConstraintError(
            f"--where {expression!r}: unknown field {name!r}{hint} "
            f"(fields: {', '.join(known)}; `bench recommend --help` lists them with units)"
        )
    if spec.kind == "number":
        try:
            number = float(raw)
        except ValueError:
            raise ConstraintError(
                f"--where {expression!r}: {name} is a number in {spec.unit}; got {raw!r}"
            ) from None
        if not math.isfinite(number):
            raise ConstraintError(f"--where {expression!r}: the limit must be a finite number")
        return Constraint(name, op, number, ())
    if op not in ("==", "!="):
        raise ConstraintError(
            f"--where {expression!r}: {name} is text; compare it with == or != (e.g. {name}==x)"
        )
    words = tuple(w.strip().lower() for w in raw.split("|"))
    if not all(words):
        raise ConstraintError(f"--where {expression!r}: empty value in {raw!r}")
    return Constraint(name, op, None, words)


def parse_all(expressions: Iterable[str]) -> list[Constraint]:
    return [parse(e) for e in expressions]


def select(cells: Iterable[CellView], constraints: Sequence[Constraint]) -> list[CellView]:
    """The cells meeting every constraint, in their order."""
    return [c for c in cells if all(k.holds(c) for k in constraints)]


def unmatched_words(constraints: Sequence[Constraint], cells: Sequence[CellView]) -> list[str]:
    """Warnings for text values no loaded cell has (``device==gpuu``): a typo would otherwise
    silently select nothing or everything."""
    warnings = []
    for constraint in constraints:
        if constraint.number is not None:
            continue
        seen = sorted({str(c.get(constraint.field)).lower() for c in cells} - {"none"})
        for word in constraint.words:
            if word not in seen:
                warnings.append(
                    f"--where {constraint.text}: no loaded cell has {constraint.field} "
                    f"{word!r} (seen: {', '.join(seen) or 'none'})"
                )
    return warnings


def fields_help() -> str:
    """Every field, one per line, for ``--help`` (docs/results.md#constraints lists them too)."""
    known = fields()
    width = max(len(n) for n in known)
    lines = []
    for name, spec in known.items():
        unit = f" [{spec.unit}]" if spec.kind == "number" and spec.unit else ""
        kind = "number" if spec.kind == "number" else "text"
        lines.append(f"  {name:<{width}}  {kind}{unit}: {spec.help}")
    return "\n".join(lines)
