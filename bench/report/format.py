"""Number formatting shared by every reading renderer (table, markdown, HTML, YAML comments).

Fixed rules, no locale and no terminal width: the same results always render to the same
characters, which is what the golden-file tests compare.
"""

from __future__ import annotations


def fmt_value(value: float | None, unit: str = "") -> str:
    """Three significant digits below 100, thousands separators above; ``-`` when missing."""
    if value is None:
        return "-"
    if unit == "examples/s" or abs(value) >= 100:
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:#.3g}".rstrip(".")
    if value == 0:
        return "0"
    return f"{value:#.3g}".rstrip(".")


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_ci(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return ""
    return f"[{fmt_ratio(lo)}, {fmt_ratio(hi)}]"


def fmt_bytes(value: float | int | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def fmt_times(factor: float) -> str:
    """How many times better, for sentences: ``1.65x``, ``12x``."""
    return f"{factor:.2f}x" if factor < 10 else f"{factor:.0f}x"


def md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
