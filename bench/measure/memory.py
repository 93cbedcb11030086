"""Device memory of one cell: the compiled program's own figure, and the runtime peak only when
it belongs to the cell.

A worker runs several cells in one process, and JAX's ``Device.memory_stats()`` reports
``peak_bytes_in_use`` over the process's whole life (it cannot be reset), so a small cell run
after a large one would report the large one's peak. Two figures instead:

- ``device_memory_bytes``: XLA's memory analysis of the compiled step
  (``compiled.memory_analysis()``): arguments + outputs - aliased (donated buffers counted in
  both) + temporaries + generated code, per device. Known before the first step, and the same in
  any position in the worker.
- ``peak_device_memory_bytes``: the runtime peak, kept only when it is this cell's: the first
  cell the worker measured on that device, or a peak that grew since the previous cell ended
  (the lifetime maximum moved, so the new maximum was reached during this cell). Otherwise it is
  unavailable, with the earlier peak as the bound it is known to stay under.

Framework-free: the backend passes plain dicts (``analysis_dict`` reads JAX's object).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.metrics import metric, unavailable

# compiled.memory_analysis() fields, as JAX's CompiledMemoryStats names them.
PARTS = (
    "argument_size_in_bytes",
    "output_size_in_bytes",
    "alias_size_in_bytes",
    "temp_size_in_bytes",
    "generated_code_size_in_bytes",
)


def analysis_dict(analysis: Any) -> dict[str, int] | None:
    """The fields of a memory analysis (an object with attributes, a dict, or a one-element
    list of either, by JAX release) as a dict; None when there is none."""
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if len(analysis) == 1 else None
    if analysis is None:
        return None
    found = {}
    for name in PARTS:
        value = (
            analysis.get(name) if isinstance(analysis, Mapping) else getattr(analysis, name, None)
        )
        if isinstance(value, int) and value >= 0:
            found[name] = value
    return found or None


def compiled_memory(analysis: Mapping[str, int] | None, why_none: str = "") -> dict[str, Any]:
    """``device_memory_bytes`` from a memory analysis dict (see ``analysis_dict``)."""
    if not analysis or "argument_size_in_bytes" not in analysis:
        return unavailable(why_none or "the compiler reports no memory analysis", "bytes")
    parts = {name: int(analysis.get(name, 0)) for name in PARTS}
    total = (
        parts["argument_size_in_bytes"]
        + parts["output_size_in_bytes"]
        - parts["alias_size_in_bytes"]
        + parts["temp_size_in_bytes"]
        + parts["generated_code_size_in_bytes"]
    )
    return metric(
        total,
        "bytes",
        "XLA memory analysis of the compiled step, per device: arguments + outputs - aliased "
        "(donated) + temporaries + generated code",
        **{name.removesuffix("_size_in_bytes") + "_bytes": v for name, v in parts.items()},
    )


def runtime_peak(
    peaks: Sequence[int | None], previous: Sequence[int | None], what: str
) -> dict[str, Any]:
    """``peak_device_memory_bytes`` when it can be attributed to this cell, else why not.

    ``peaks``: each local device's lifetime peak now (None: the device reports none);
    ``previous``: the same at the end of the worker's previous cell on that device (None: this
    is its first cell). ``what`` names the source, e.g. "jax Device.memory_stats()".
    """
    if not peaks or any(p is None for p in peaks):
        return unavailable(f"{what} reports no peak_bytes_in_use", "bytes")
    now = [int(p) for p in peaks if p is not None]
    across = f", the largest of {len(now)} devices" if len(now) > 1 else ""
    if all(before is None for before in previous):
        return metric(
            max(now), "bytes", f"{what} peak_bytes_in_use, first cell of the worker{across}"
        )
    grew = [p for p, before in zip(now, previous, strict=True) if before is None or p > before]
    if grew:
        return metric(
            max(grew),
            "bytes",
            f"{what} peak_bytes_in_use, which grew during this cell (a lifetime peak: it "
            f"moved, so this cell reached it){across}",
        )
    bound = max(int(b) for b in previous if b is not None)
    return unavailable(
        f"the worker's lifetime peak ({bound} bytes) was set by an earlier cell and cannot be "
        f"reset; this cell stayed under it: see device_memory_bytes",
        "bytes",
    )
