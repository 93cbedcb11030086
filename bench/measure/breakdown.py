"""Where a cell's time goes: the top ops by self time, and how busy the device was.

Framework-free: each backend reads its profiler's trace into ``OpEvent`` s (one per execution
of an op, on the line it ran on: a GPU/TPU stream, or a CPU thread running XLA's or
TensorFlow's kernels), and ``breakdown`` turns them into the numbers the record keeps.

- **Self time** of an op: its duration minus the op events nested inside it on the same line
  (a fusion that calls a kernel counts the kernel once, under the kernel); the runtime's own
  spans inside an op (a thread-pool wait) stay the op's, since the op is what waited.
- **Share** of an op: its self time over the self time of all ops in the trace.
- **Busy share**: the union of every op interval, on every line, over the wall time of the
  traced steps (measured by the cell around them): the fraction of that time at least one
  device (or, on a CPU, one compute thread) was running an op. What is left is time the device
  waited for the host: dispatch, input, Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TOP_OPS = 10  # ops kept on the record; the trace folder holds everything
# Op kinds that are matrix multiplications (XLA opcodes, TensorFlow op types, library calls).
MATMUL_WORDS = ("dot", "convolution", "gemm", "matmul", "conv2d", "conv3d", "einsum")


@dataclass(frozen=True)
class OpEvent:
    line: str  # where it ran: "<process>/<thread or stream>", unique within one trace
    op: str  # the HLO instruction or TensorFlow op it times
    start_us: float
    dur_us: float


def self_times(events: Iterable[OpEvent]) -> dict[str, tuple[float, int]]:
    """Per op: (self time in us, executions). Events nest on a line like a call stack."""
    by_line: dict[str, list[OpEvent]] = {}
    for e in events:
        by_line.setdefault(e.line, []).append(e)
    totals: dict[str, list[float]] = {}
    for line_events in by_line.values():
        # Parents first: earlier start, and the longer of two that start together.
        line_events.sort(key=lambda e: (e.start_us, -e.dur_us))
        stack: list[tuple[OpEvent, list[float]]] = []  # (event, [self time left])
        for e in line_events:
            while stack and e.start_us >= stack[-1][0].start_us + stack[-1][0].dur_us:
                _close(stack.pop(), totals)
            if stack:
                stack[-1][1][0] -= min(e.dur_us, _end(stack[-1][0]) - e.start_us)
            stack.append((e, [e.dur_us]))
        while stack:
            _close(stack.pop(), totals)
    return {op: (t, int(n)) for op, (t, n) in totals.items()}


def _end(e: OpEvent) -> float:
    return e.start_us + e.dur_us


def _close(entry: tuple[OpEvent, list[float]], totals: dict[str, list[float]]) -> None:
    event, left = entry
    found = totals.setdefault(event.op, [0.0, 0.0])
    found[0] += max(left[0], 0.0)
    found[1] += 1


def busy_us(events: Iterable[OpEvent]) -> float:
    """Length of the union of all op intervals, over every line."""
    spans = sorted((e.start_us, _end(e)) for e in events if e.dur_us > 0)
    total, cur_start, cur_end = 0.0, None, None
    for start, end in spans:
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total


def breakdown(
    events: list[OpEvent],
    wall_s: float,
    steps: int,
    scope: str,
    kinds: Mapping[str, str] | None = None,
    sources: Mapping[str, str] | None = None,
    top: int = TOP_OPS,
) -> dict[str, Any]:
    """The record's ``profile.breakdown``: top ops by self time with their share, busy share.

    ``scope`` says what the lines are ("device streams", "XLA compute threads", ...);
    ``kinds`` maps an op to its kind (``hlo_kinds``), ``sources`` to the framework op it came
    from, both optional.
    """
    if not events:
        raise ValueError(f"the trace holds no op events on {scope}")
    per_op = self_times(events)
    total = sum(t for t, _ in per_op.values())
    ranked = sorted(per_op.items(), key=lambda kv: -kv[1][0])
    busy = busy_us(events) / 1e6
    out_ops = []
    for op, (self_us, count) in ranked[:top]:
        entry: dict[str, Any] = {
            "op": op,
            "kind": (kinds or {}).get(op) or tf_op_type(op),
            "self_s": self_us / 1e6,
            "share": self_us / total if total > 0 else 0.0,
            "count": count,
        }
        if sources and sources.get(op):
            entry["source"] = sources[op]
        out_ops.append(entry)
    return {
        "traced_steps": steps,
        "traced_wall_s": wall_s,
        "scope": scope,
        "lines": len({e.line for e in events}),
        "op_self_s": total / 1e6,
        "ops": len(per_op),
        "busy_s": busy,
        "busy_share": busy / wall_s if wall_s > 0 else None,
        "top_ops": out_ops,
    }


def tf_op_type(op: str) -> str:
    """A TensorFlow op event is named ``name:Type`` (``dense/MatMul:MatMul``): its type."""
    head, sep, kind = op.rpartition(":")
    return kind if sep and head and re.fullmatch(r"[A-Za-z_][\w]*", kind) else ""


def is_matmul(kind: str, op: str = "") -> bool:
    """Whether an op kind (or, failing that, its name) is a matrix multiplication or a
    fusion/library call containing one."""
    text = (kind or op).lower()
    return any(word in text for word in MATMUL_WORDS)


# -- HLO text ----------------------------------------------------------------------------------

_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*(?:\(.*\))?.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_OPCODE = re.compile(r"\s([a-z][\w\-]*)\(")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_TARGET = re.compile(r'custom_call_target="([^"]*)"')
_SOURCE = re.compile(r'op_name="([^"]*)"')


@dataclass(frozen=True)
class HloOps:
    kinds: dict[str, str]  # instruction -> kind ("dot", "fusion(dot)", "custom-call(gemm)")
    sources: dict[str, str]  # instruction -> the framework op it came from (metadata op_name)


def hlo_ops(text: str) -> HloOps:
    """Each instruction's kind in an HLO module's text: its opcode, and for a fusion or call
    what inside it does the arithmetic that matters (a dot or convolution), so a CPU's
    ``ynn_fusion.3`` or a GPU's ``loop_fusion`` reads as the matmul it is."""
    opcodes: dict[str, str] = {}
    calls: dict[str, str] = {}
    targets: dict[str, str] = {}
    sources: dict[str, str] = {}
    members: dict[str, list[str]] = {}  # computation -> its instructions
    current = ""
    for raw in text.splitlines():
        inst = _INSTRUCTION.match(raw)
        if inst and current:
            name, rest = inst.groups()
            found = _OPCODE.search(" " + rest)
            if not found:
                continue
            opcodes[name] = found.group(1)
            members.setdefault(current, []).append(name)
            if m := _CALLS.search(rest):
                calls[name] = m.group(1)
            if m := _TARGET.search(rest):
                targets[name] = m.group(1)
            if m := _SOURCE.search(rest):
                sources[name] = m.group(1)
            continue
        comp = _COMPUTATION.match(raw)
        if comp and " = " not in raw:
            current = comp.group(1)
        elif raw.strip() == "}":
            current = ""

    def heavy(name: str, seen: frozenset[str]) -> str:
        """The heaviest arithmetic an instruction does: dot, convolution, gemm, or ""."""
        code = opcodes.get(name, "")
        if code in ("dot", "convolution"):
            return code
        if code == "custom-call":
            target = targets.get(name, "").lower()
            if "gemm" in target or "matmul" in target:
                return "gemm"
            return "convolution" if "conv" in target else ""
        callee = calls.get(name)
        if callee and callee not in seen:
            inner = [heavy(m, seen | {callee}) for m in members.get(callee, [])]
            for word in ("convolution", "dot", "gemm"):
                if word in inner:
                    return word
        return ""

    kinds = {}
    for name, code in opcodes.items():
        inner = heavy(name, frozenset())
        kinds[name] = code if not inner or inner == code else f"{code}({inner})"
    return HloOps(kinds, sources)
