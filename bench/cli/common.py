"""What every command shares: the consoles, exit codes, how errors print, argument helpers."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

EXIT_USAGE = 2
WHERE_HELP = """\
--where EXPR is FIELD OP VALUE, OP one of <= >= < > == != (text fields: == and != only,
alternatives joined by |, e.g. device==gpu|tpu). Fields:
{fields}
"""
out = Console()
if not out.is_terminal:
    # Piped into a log or a CI job: tables are read later, wide, rather than folded at 80.
    out = Console(width=160)
# Errors are never wrapped: a message names a file and line that tools and people grep for.
err = Console(stderr=True, soft_wrap=True)


def wide_console() -> Console:
    """Piped output keeps whole rows (no wrapping to 80 columns); a terminal gets its width."""
    return out if out.is_terminal else Console(width=250)


def print_error(message: str) -> None:
    err.print(message, style="red", highlight=False, markup=False)


def where_help() -> str:
    from bench.read.constraints import fields_help

    return WHERE_HELP.format(fields=fields_help())


def add_set_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_where_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--where", action="append", default=[], metavar="EXPR", help=help)


def bounded_int(low: int, high: int):
    """An argparse ``type`` for a counted flag: a whole number from ``low`` to ``high``
    (bench.limits says why each bound is what it is); anything else is a usage error, exit 2."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a number, or one of thousands of digits
            value = None
        if value is None or not low <= value <= high:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise argparse.ArgumentTypeError(
                f"{shown!r}: expected a whole number from {low:,} to {high:,}"
            )
        return value

    return parse


def pydantic_lines(exc: Any, names: dict[str, str] | None = None) -> list[str]:
    """One line per problem of a pydantic ValidationError: the field (as ``names`` spells it
    for the user, e.g. a flag), what was found and what was expected; never pydantic's own
    multi-line dump with its documentation URL."""
    lines = []
    for e in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in e["loc"])
        where = (names or {}).get(loc, loc) or "(top level)"
        found = repr(e.get("input"))
        found = found if len(found) <= 60 else found[:57] + "..."
        expected = e["msg"].removeprefix("Value error, ").replace("Input should be ", "")
        if expected.startswith(("greater", "less")):
            expected = f"a number {expected}"
        lines.append(f"{where}: got {found}; expected {expected}")
    return lines


def _noise_fraction(text: str) -> float:
    from bench.measure.noise import check_threshold

    try:
        return check_threshold(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a fraction such as 0.05 (5%), finite, in [0, 10)"
        ) from None


def add_noise_option(p: argparse.ArgumentParser, claim: str) -> None:
    """``--noise``: the threshold a difference must clear to be claimed (bench.measure.noise)."""
    from bench.measure.noise import DEFAULT_THRESHOLD

    p.add_argument(
        "--noise",
        type=_noise_fraction,
        metavar="FRACTION",
        help=f"noise threshold: {claim} only where the whole 95%% CI lies beyond it, e.g. 0.05 "
        "for 5%% (default: per cell, the largest spread between repeated processes where "
        f"measure.repeats measured one, else {DEFAULT_THRESHOLD * 100:g}%%, the gate's "
        "default threshold; either way widened where other processes used more of the CPU "
        "while a cell was measured, or the reference kernel saw the machine change speed "
        "between or within the runs)",
    )


def input_error(command: str, exc: Exception) -> int:
    """A file that cannot be used: one message per problem, exit 2, never a traceback."""
    for line in str(exc).splitlines():
        err.print(f"bench {command}: {line}", style="red", highlight=False, markup=False)
    return EXIT_USAGE


def load_for_reading(paths: list[str], *, allow_repeats: bool = False):
    """Runs for the reading commands, or None after printing why (the caller exits 2)."""
    from bench.read.runset import load_runs
    from bench.runfolder import ResultsError

    try:
        runset = load_runs(paths, allow_repeats=allow_repeats)
    except ResultsError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False)
        return None
    for warning in runset.warnings:
        err.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)
    return runset


def parse_where(expressions: list[str]):
    """Parsed --where options, or None after printing why (the caller exits 2)."""
    from bench.read.constraints import ConstraintError, parse_all

    try:
        return parse_all(expressions)
    except ConstraintError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False)
        return None


def warn_unmatched(constraints, runset) -> None:
    from bench.read.constraints import unmatched_words

    for warning in unmatched_words(constraints, runset.cells):
        err.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)
