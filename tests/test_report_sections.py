"""The report's section list: unique anchors, and ``register`` refusing what would leave the
report with two sections under one link or a section placed before one that does not exist."""

from __future__ import annotations

import pytest

from bench.report import sections
from bench.report.document import Paragraph
from bench.report.sections import ReportSection, register


def _section(anchor: str) -> ReportSection:
    return ReportSection(anchor, anchor.title(), lambda ctx: [Paragraph(anchor)])


def test_anchors_are_unique():
    anchors = [s.anchor for s in sections.SECTIONS]
    assert len(anchors) == len(set(anchors)), anchors


def test_register_appends_or_inserts_before_an_anchor(monkeypatch):
    monkeypatch.setattr(sections, "SECTIONS", list(sections.SECTIONS))
    register(_section("last"))
    register(_section("early"), before="summary")
    anchors = [s.anchor for s in sections.SECTIONS]
    assert anchors[0] == "early" and anchors[-1] == "last"


def test_register_refuses_a_taken_anchor_or_an_unknown_place(monkeypatch):
    monkeypatch.setattr(sections, "SECTIONS", list(sections.SECTIONS))
    with pytest.raises(ValueError, match="'summary' is already registered"):
        register(_section("summary"))
    with pytest.raises(ValueError, match="no report section 'nowhere' to put 'new' before"):
        register(_section("new"), before="nowhere")
