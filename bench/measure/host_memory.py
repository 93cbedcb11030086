"""Peak resident memory of this process, per cell, from the kernel's own high-water mark."""

from __future__ import annotations

from typing import Any

from bench.metrics import metric, unavailable


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so it covers this cell only (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss_metric(reset_worked: bool) -> dict[str, Any]:
    """The ``peak_host_rss_bytes`` metric of a cell: VmHWM, over the cell where the reset at
    its start worked, else over the worker's lifetime (the entry says which)."""
    peak = peak_rss_bytes()
    if peak is None:
        return unavailable("/proc/self/status not readable", "bytes")
    scope = "this cell (VmHWM reset at its start)" if reset_worked else "the worker's lifetime"
    return metric(peak, "bytes", f"VmHWM of the worker over {scope}")
