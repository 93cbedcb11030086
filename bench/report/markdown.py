"""The report as markdown, for CI job summaries: tables inline, plots as SVG files beside it
(``report.md`` gets ``report_files/<plot>.svg``), linked by relative path."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from bench.report.document import (
    Block,
    Bullets,
    Heading,
    Paragraph,
    PlotBlock,
    Report,
    TableBlock,
)
from bench.report.format import md_cell, md_escape


def plots_dir(out: Path) -> Path:
    return out.with_name(f"{out.stem}_files")


def _table(block: TableBlock) -> list[str]:
    lines = ["| " + " | ".join(md_cell(h) or " " for h in block.headers) + " |"]
    lines.append("| " + " | ".join("---:" if n else "---" for n in block.numeric) + " |")
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in block.rows]
    return lines


def _block(block: Block, folder: str) -> list[str]:
    if isinstance(block, Paragraph):
        return [f"_{md_escape(block.text)}_" if block.kind == "muted" else md_escape(block.text)]
    if isinstance(block, Heading):
        return [f"### {md_escape(block.text)}"]
    if isinstance(block, Bullets):
        return [f"- {md_escape(i)}" for i in block.items]
    if isinstance(block, PlotBlock):
        # The folder is named after the output file: quoted, so any name stays a link target.
        return [f"![{md_cell(block.title)}]({quote(f'{folder}/{block.name}.svg')})"]
    return _table(block)


def render(report: Report, out: Path) -> str:
    """The markdown text for ``out``; its plots go to ``plots_dir(out)`` (see ``write``)."""
    folder = plots_dir(out).name
    lines = [f"# {md_escape(report.title)}", "", md_escape(report.subtitle), ""]
    for section in report.sections:
        lines += [f"## {md_escape(section.title)}", ""]
        for block in section.blocks:
            lines += [*_block(block, folder), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write(report: Report, out: Path) -> list[Path]:
    """Write ``out`` and its plot files; returns every path written."""
    folder = plots_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in report.plots:
        path = folder / f"{plot.name}.svg"
        path.write_text(plot.svg + "\n")
        written.append(path)
    out.write_text(render(report, out))
    return [out, *written]
