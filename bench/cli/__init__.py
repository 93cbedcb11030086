"""The ``bench`` command: parse arguments, call the library, render. No logic lives here.

One module per command family (``run``, ``serve``, ``read``, ``gate``, ``history``, ``info``,
``pipeline``, ``tune``), each adding its own
subcommands; ``common`` holds what they share.

Exit codes: 0 every runnable cell succeeded; 1 some cell failed (failed, oom, timeout or
invalid); 2 usage or validation error; 3 nothing could run (every cell skipped); 130 the run
was interrupted (its finished cells are kept; ``bench run --resume RUN_DIR`` finishes it).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from bench import __version__
from bench.cli import gate, history, info, pipeline, read, run, serve, tune
from bench.cli.common import EXIT_USAGE, err


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark ML training and batch prediction in TensorFlow and JAX on CPU, GPU and TPU.",
        epilog="exit codes: 0 ok, 1 a cell failed, 2 usage/validation error, 3 nothing could run, "
        "130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in (run, serve, read, gate, history, info, pipeline, tune):
        family.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # Whatever slipped past the loaders' checks must not exit 1: for `bench gate` that code
        # means a regression, for `bench run` a failed cell. Say where, without a traceback.
        return internal_error(args.command, exc)


def internal_error(command: str, exc: BaseException) -> int:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    err.print(
        f"bench {command}: unexpected {type(exc).__name__}{at}: {exc} (the input may be "
        "damaged in a way bench does not check yet; please report it)",
        style="red",
        highlight=False,
        markup=False,
    )
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
