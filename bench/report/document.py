"""The report's neutral structure: sections of paragraphs, bullets, tables, plots and headings.

Sections (``bench/report/sections/``) fill it from loaded runs; ``html.py`` and ``markdown.py``
only lay it out, so the HTML report and the markdown job summary always carry the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Paragraph:
    text: str
    kind: str = ""  # "" or "muted"


@dataclass
class Bullets:
    items: list[str]


@dataclass
class TableBlock:
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]  # right-aligned columns
    status_column: int | None = None  # a column whose text is a cell status (coloured)


@dataclass
class PlotBlock:
    name: str  # file stem for the markdown report's plot files
    title: str
    svg: str


@dataclass
class Heading:
    text: str


Block = Paragraph | Bullets | TableBlock | PlotBlock | Heading


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    subtitle: str
    sections: list[Section]

    @property
    def plots(self) -> list[PlotBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, PlotBlock)]
