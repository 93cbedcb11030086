"""The environment of each run, side by side: scenario, host, accelerators, versions, commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.backends import registry
from bench.report.document import Block, TableBlock
from bench.report.format import fmt_bytes
from bench.report.sections.base import Context, ReportSection

# A row: its name, and how to read it from a run's meta (run.json) and host.
Row = tuple[str, Callable[[dict[str, Any], Any], str]]


def _env(meta: dict[str, Any]) -> dict[str, Any]:
    return meta.get("environment") or {}


def _host(meta: dict[str, Any]) -> dict[str, Any]:
    return _env(meta).get("host") or {}


def _package(name: str) -> Callable[[dict[str, Any], Any], str]:
    return lambda m, h: str((_env(m).get("packages") or {}).get(name) or "-")


def _accelerators(meta: dict[str, Any], host: Any) -> str:
    found = _env(meta).get("accelerators") or []
    if not found:
        return "none"
    return "; ".join(
        " ".join(
            str(a.get(k))
            for k in ("name", "accelerator_type", "driver_version", "memory_bytes")
            if a.get(k) is not None
        )
        for a in found
    )


def _git(meta: dict[str, Any], host: Any) -> str:
    state = _env(meta).get("git") or {}
    commit = state.get("commit")
    if not commit:
        return "-"
    return f"{str(commit)[:12]}{' (dirty)' if state.get('dirty') else ''}"


def _scenario(meta: dict[str, Any], host: Any) -> str:
    scenario = meta.get("scenario", {})
    return f"{scenario.get('name', '?')} ({scenario.get('path', '?')})"


def _cores(meta: dict[str, Any], host: Any) -> str:
    found = _host(meta)
    return f"{found.get('cpu_count_usable', '?')} / {found.get('cpu_count_logical', '?')}"


def _rows() -> list[Row]:
    return [
        ("scenario", _scenario),
        ("status", lambda m, h: str(m.get("status", "?"))),
        (
            "started / finished",
            lambda m, h: f"{m.get('started_at', '?')} / {m.get('finished_at') or '-'}",
        ),
        ("host", lambda m, h: f"{h.label} ({h.hostname})"),
        ("CPU", lambda m, h: str(_host(m).get("cpu_model", "?"))),
        ("cores (usable / logical)", _cores),
        ("memory", lambda m, h: fmt_bytes(_host(m).get("memory_bytes"))),
        ("accelerators", _accelerators),
        ("OS", lambda m, h: str((_env(m).get("os") or {}).get("platform", "?"))),
        ("Python", lambda m, h: str((_env(m).get("python") or {}).get("version", "?"))),
        ("bench", lambda m, h: str(m.get("bench_version", "?"))),
        # one row per registered backend: the version of its framework's package
        *((name, _package(registry.spec(name).packages[0])) for name in registry.names()),
        ("numpy", _package("numpy")),
        ("git commit", _git),
        ("overrides", lambda m, h: " ".join(m.get("scenario", {}).get("overrides") or []) or "-"),
    ]


def render(ctx: Context) -> list[Block]:
    runset = ctx.runset
    headers = ["", *(f"{ctx.letters[r.run_id]}: {r.run_id}" for r in runset.runs)]
    rows = [
        [name, *(read(run.meta, host) for run, host in zip(runset.runs, runset.hosts, strict=True))]
        for name, read in _rows()
    ]
    return [TableBlock(headers, rows, [False] * len(headers))]


SECTION = ReportSection("environment", "Environment of each run", render)
