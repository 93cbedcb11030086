"""The report as one self-contained HTML file: inline CSS, inline SVG plots, no scripts.

Self-contained means it opens from a CI artifact, an e-mail or an air-gapped machine exactly as
it was written: no CDN, no web font, no request of any kind. A Content-Security-Policy of
``default-src 'none'`` (inline styles and data: images allowed) makes the browser enforce that
even if a future change slipped a URL in.
"""

from __future__ import annotations

from html import escape

from bench.report.document import (
    Block,
    Bullets,
    Heading,
    Paragraph,
    PlotBlock,
    Report,
    TableBlock,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root { --ink: #1a1a1a; --muted: #5f6368; --line: #e3e3e3; --band: #f6f7f9; --accent: #0b57d0; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #eef0f3;
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { background: #1f2937; color: #fff; padding: 20px 32px 16px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #cbd5e1; font-size: 13px; }
nav { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid var(--line);
  padding: 8px 32px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 16px; white-space: nowrap; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 4px 24px 20px; margin: 16px 0; }
h2 { font-size: 18px; margin: 16px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { margin: 8px 0; }
p.muted { color: var(--muted); }
ul { margin: 6px 0; padding-left: 22px; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 12px;
  margin: 12px 0; }
figure { margin: 0; }
svg.plot { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
.table-wrap { overflow-x: auto; margin: 10px 0; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--band); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
td:first-child { white-space: nowrap; }
tr:nth-child(even) td { background: #fbfbfc; }
.status { font-weight: 600; border-radius: 4px; padding: 0 6px; }
.s-ok { color: #137333; background: #e6f4ea; }
.s-skipped { color: #8a5a00; background: #fef7e0; }
.s-failed, .s-oom, .s-timeout { color: #b3261e; background: #fce8e6; }
.s-invalid { color: #8e24aa; background: #f3e8fd; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 12px; }
"""


def _table(block: TableBlock) -> str:
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if num else f"<th>{escape(h)}</th>"
        for h, num in zip(block.headers, block.numeric, strict=True)
    )
    body = []
    for row in block.rows:
        cells = []
        for i, (text, num) in enumerate(zip(row, block.numeric, strict=True)):
            content = escape(text)
            if i == block.status_column and text:
                content = f'<span class="status s-{escape(text)}">{content}</span>'
            cells.append(f'<td class="num">{content}</td>' if num else f"<td>{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        cls = f' class="{block.kind}"' if block.kind else ""
        return f"<p{cls}>{escape(block.text)}</p>"
    if isinstance(block, Heading):
        return f"<h3>{escape(block.text)}</h3>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, PlotBlock):
        return f'<figure id="plot-{escape(block.name)}">{block.svg}</figure>'
    return _table(block)


def _blocks(blocks: list[Block]) -> str:
    """Blocks in order; consecutive plots share a grid, two side by side on a wide screen."""
    out: list[str] = []
    plots: list[str] = []
    for block in [*blocks, None]:
        if isinstance(block, PlotBlock):
            plots.append(_block(block))
            continue
        if plots:
            out.append('<div class="plots">' + "".join(plots) + "</div>")
            plots = []
        if block is not None:
            out.append(_block(block))
    return "\n".join(out)


def render(report: Report) -> str:
    nav = "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in report.sections)
    sections = "\n".join(
        f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>\n'
        + _blocks(s.blocks)
        + "\n</section>"
        for s in report.sections
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(report.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{escape(report.title)}</h1><p>{escape(report.subtitle)}</p></header>
<nav>{nav}</nav>
<main>
{sections}
</main>
<footer>written by bench report; self-contained: no scripts, no external resources</footer>
</body>
</html>
"""
