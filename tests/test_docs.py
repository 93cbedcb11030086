"""The docs say only what is true of the CLI and of each other.

For every page (README.md and docs/*.md): each ``bench COMMAND [SUBCOMMAND]`` in a code block or
inline code is a real command, each flag written after it is in that command's ``--help``, a flag
named alone in inline code is some command's, a repository path named in inline code exists,
and every relative link reaches a file and, with ``#anchor``, one of its headings. The parser is
built in-process (``bench.cli.build_parser()``), so this is fast and imports no framework.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bench.cli import build_parser
from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


FENCE = re.compile(r"^(```|~~~)")
INLINE = re.compile(r"(`+)(.+?)\1")
COMMAND = re.compile(r"(?<![\w./-])bench\s+([a-z][a-z-]*)\b(?:\s+([a-z][a-z-]*)\b)?")
FLAG = re.compile(r"(?:^|(?<=[\s\[(]))(--?[A-Za-z][\w-]*)")
# Where a shell command ends: a pipe (not markdown's escaped \|), && or ;. A comment is prose.
END = re.compile(r"(?<!\\)\s\|\s|&&|;")
COMMENT = re.compile(r"(?:^|\s)#\s.*")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"^(?:bench|models|tests|scenarios|\.ci|\.github/examples)/[\w./-]*$")


def commands(parser: argparse.ArgumentParser) -> dict[tuple[str, ...], set[str]]:
    """Every command path (``("data", "make")``) with the options its ``--help`` lists."""
    found: dict[tuple[str, ...], set[str]] = {}

    def walk(p: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        found[path] = {o for a in p._actions for o in a.option_strings}
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, (*path, name))

    walk(parser, ())
    return found


def _has_subcommands(known: dict[tuple[str, ...], set[str]], path: tuple[str, ...]) -> bool:
    return any(len(p) == len(path) + 1 and p[: len(path)] == path for p in known)


def _split_page(text: str) -> tuple[list[str], list[str], list[str]]:
    """(code block lines, with ``\\`` continuations joined; inline code spans; prose lines)."""
    blocks: list[str] = []
    spans: list[str] = []
    prose: list[str] = []
    in_block = False
    pending = ""
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            in_block = not in_block
            continue
        if in_block:
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            blocks.append(pending + line)
            pending = ""
        else:
            prose.append(line)
            spans += [m.group(2) for m in INLINE.finditer(line)]
    return blocks, spans, prose


def _check_command_text(text: str, known: dict[tuple[str, ...], set[str]]) -> list[str]:
    problems: list[str] = []
    for segment in END.split(COMMENT.sub("", text)):
        matches = list(COMMAND.finditer(segment))
        for i, match in enumerate(matches):
            words = [w for w in match.groups() if w]
            path = (words[0],)
            if path not in known:
                problems.append(f"no command 'bench {words[0]}' (in {segment.strip()!r})")
                continue
            if _has_subcommands(known, path):
                if len(words) < 2 or (*path, words[1]) not in known:
                    problems.append(
                        f"'bench {words[0]}' needs a subcommand: "
                        f"{sorted(p[1] for p in known if len(p) == 2 and p[0] == words[0])}"
                        f" (in {segment.strip()!r})"
                    )
                    continue
                path = (*path, words[1])
            stop = matches[i + 1].start() if i + 1 < len(matches) else len(segment)
            rest = segment[match.end() : stop]
            for flag in FLAG.findall(rest):
                if flag not in known[path]:
                    problems.append(f"'bench {' '.join(path)}' has no option {flag}")
    return problems


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    _, _, prose = _split_page(text)
    for line in prose:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def page_problems(page: Path, parser: argparse.ArgumentParser) -> list[str]:
    """Everything untrue in one page, each as ``page: what is wrong``."""
    known = commands(parser)
    every_flag = set().union(*known.values())
    text = page.read_text()
    blocks, spans, prose = _split_page(text)
    problems: list[str] = []
    for code in blocks + spans:
        problems += _check_command_text(code, known)
    for span in spans:
        alone = re.match(r"^(--[A-Za-z][\w-]*)", span)
        if alone and alone.group(1) not in every_flag:
            problems.append(f"no command has option {alone.group(1)}")
        if REPO_PATH.match(span) and "<" not in span:
            path = span.rstrip("/")
            if not (REPO / path).exists():
                problems.append(f"no such path {span}")
    for line in prose:
        for target in LINK.findall(INLINE.sub("", line)):
            if re.match(r"^[a-z]+:", target):
                continue  # http:, https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            if not dest.exists():
                problems.append(f"link to missing file {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text()):
                problems.append(f"link to missing heading {target}")
    label = page.relative_to(REPO) if page.is_relative_to(REPO) else page.name
    return [f"{label}: {p}" for p in problems]


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def test_the_readme_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert PAGES[1:], "no docs/*.md pages"
    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_names_only_real_commands_flags_paths_and_links(page, parser):
    assert page_problems(page, parser) == []


SYNTHETIC = """# A page

## Usage

```bash
bench compare results/a results/b --format md --made-up-flag
bench frobnicate results/a
bench data results/a
bench gate --baseline b.json \\
    --candidate results/c --not-a-gate-flag
```

Run `bench report RUN --objective cost --inline-plots` or pass `--no-such-flag` alone.
`bench recommend RUN --where 'p99_ms<=50' | head --lines 3` pipes into another tool.
Read [usage](#usage), [missing](#nowhere), [gone](nothing.md) and `bench/no_such_module.py`.
"""


def test_made_up_commands_flags_paths_and_links_are_caught(tmp_path, parser):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(SYNTHETIC)
    problems = [p.split(": ", 1)[1] for p in page_problems(page, parser)]
    assert problems == [
        "'bench compare' has no option --made-up-flag",
        "no command 'bench frobnicate' (in 'bench frobnicate results/a')",
        "'bench data' needs a subcommand: ['make'] (in 'bench data results/a')",
        "'bench gate' has no option --not-a-gate-flag",
        "'bench report' has no option --inline-plots",
        "no command has option --no-such-flag",
        "no such path bench/no_such_module.py",
        "link to missing heading #nowhere",
        "link to missing file nothing.md",
    ]
