"""The ``bench`` command: parse arguments, call the library, render. No logic lives here.

One module per command family (``run``, ``read``, ``gate``, ``info``), each adding its own
subcommands; ``common`` holds what they share.

Exit codes: 0 every runnable cell succeeded; 1 some cell failed (failed, oom, timeout or
invalid); 2 usage or validation error; 3 nothing could run (every cell skipped); 130 the run
was interrupted (its finished cells are kept; ``bench run --resume RUN_DIR`` finishes it).
"""

from __future__ import annotations

import argparse
import sys

from bench import __version__
from bench.cli import gate, info, read, run
from bench.cli.common import err


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark ML training and batch prediction in TensorFlow and JAX on CPU, GPU and TPU.",
        epilog="exit codes: 0 ok, 1 a cell failed, 2 usage/validation error, 3 nothing could run, "
        "130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in (run, read, gate, info):
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


if __name__ == "__main__":
    sys.exit(main())
