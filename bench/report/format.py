"""Number formatting shared by every reading renderer (table, markdown, HTML, YAML comments).

Fixed rules, no locale and no terminal width: the same results always render to the same
characters, which is what the golden-file tests compare.
"""

from __future__ import annotations

import re


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


# Characters that make markdown do something other than show text: raw HTML and entities
# (``<script>``, ``&lt;``), code spans, table cells (``|``), and the backslash that would undo
# an escape. A link or image needs ``](`` or ``][`` (or a ``[label]:`` definition at the start
# of a line), so a ``]`` before ``(``, ``[`` or ``:`` is escaped and plain brackets, such as
# the intervals "[0.98, 1.02]", stay as they are. ``*``, ``_`` and ``~`` can only emphasise or
# strike through (and ``_`` is in most of bench's names), so they are left as is.
_MD_INLINE = re.compile(r"([\\`<>|&]|\](?=[(\[:]))")
# Block markers at the start of a line: headings, list items, a thematic break, a reference
# definition. A lone "-" (the placeholder for a missing value) is no list item: left alone.
_MD_LEADING = re.compile(r"^(\s*)(#|\[|[-+*](?=\s)|[-=_*]{3,}\s*$)")
_MD_ORDERED = re.compile(r"^(\s*\d{1,9})([.)])(?=\s|$)")


def md_cell(text: str) -> str:
    """Any string (a scenario name, cell id, host name, reason) as the markdown of a table cell
    or of the middle of a line, showing exactly that text: on one line, and every active
    character backslash-escaped (CommonMark escapes ASCII punctuation this way)."""
    return _MD_INLINE.sub(r"\\\1", " ".join(str(text).splitlines()))


def md_escape(text: str) -> str:
    """``md_cell``, for text that starts a line (a paragraph, a list item, a heading): a
    leading block marker (``#``, ``>``, ``- ``, ``1.``, ``[label]:``) is escaped too."""
    escaped = _MD_ORDERED.sub(r"\1\\\2", md_cell(text), count=1)  # "1. x" -> "1\. x"
    return _MD_LEADING.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", escaped, count=1)


def md_code(text: str, *, in_table: bool = False) -> str:
    """``text`` as an inline code span, whatever backticks it holds: the fence is one backtick
    longer than its longest run. In a table cell ``|`` still ends the cell, so it is escaped."""
    flat = " ".join(str(text).splitlines())
    if in_table:
        flat = flat.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"
