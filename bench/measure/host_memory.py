"""Peak resident memory of this process, per cell, from the kernel's own high-water mark."""

from __future__ import annotations


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
