"""The HTML report in a real browser: headless Chromium draws its plots and makes no request.

Three checks, each of which the others do not cover:
- the file itself names no remote resource (no http(s) or protocol-relative src/href, no
  script, stylesheet link, @import or url()) and carries a CSP of ``default-src 'none'``;
- Chromium's network log of loading the file has no request that the page started (Chromium's
  own background traffic, "initiator: not an origin", is not the page's doing); a canary page
  that does request an image proves the check can see one;
- a screenshot is not blank and shows the plot series colours; the DOM as the browser parsed
  it holds the SVG plots with their drawn elements.

Skipped where Chromium is absent; CI installs Debian's ``chromium`` (see .ci/run).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.read.runset import load_runs
from bench.report import content, html
from bench.report.svg import PALETTE
from tests.fixtures.runs import fleet

BROWSER = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no chromium on PATH (apt-get install chromium); CI installs it in .ci/run",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
]


def chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    assert BROWSER is not None
    return subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


def page_requests(netlog: Path) -> list[str]:
    """URLs of requests the page itself started, from Chromium's --log-net-log file."""
    text = netlog.read_text()
    if not text.rstrip().endswith("}"):  # a log cut short at exit lacks its closing brackets
        text = text.rstrip().rstrip(",") + "]}"
    log = json.loads(text)
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if names.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        if params.get("initiator") == "not an origin":  # Chromium's own background requests
            continue
        if not params["url"].startswith("file:"):
            urls.append(params["url"])
    return urls


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    runset = load_runs(fleet(root / "runs"))
    path = root / "report.html"
    path.write_text(html.render(content.build(runset)))
    return path


def test_the_file_names_no_remote_resource(report_file):
    text = report_file.read_text()
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    for banned in ("<script", "<link", "@import", "url(", "<iframe", "<object"):
        assert banned not in text.lower(), banned


def test_no_request_leaves_the_file(report_file, tmp_path):
    netlog = tmp_path / "net.json"
    done = chromium(tmp_path, report_file, f"--log-net-log={netlog}", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert page_requests(netlog) == []
    # the canary: a page that does fetch something is seen doing it
    canary = tmp_path / "canary.html"
    canary.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/canary.png">')
    canary_log = tmp_path / "canary.json"
    chromium(tmp_path, canary, f"--log-net-log={canary_log}", "--dump-dom")
    assert page_requests(canary_log) == ["http://127.0.0.1:9/canary.png"]


def test_plots_are_drawn(report_file, tmp_path):
    from PIL import Image  # test dependency: decodes the screenshot

    dom = chromium(tmp_path, report_file, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = dom.stdout
    n_svg = parsed.count('<svg xmlns="http://www.w3.org/2000/svg"')
    assert n_svg >= 8, n_svg  # throughput, percentiles, cost, energy, MFU, Pareto...
    assert parsed.count("<polyline") >= 4 and parsed.count("<rect") > 50

    shot = tmp_path / "report.png"
    done = chromium(tmp_path, report_file, "--window-size=1280,3200", f"--screenshot={shot}")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 3200)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200  # text, tables, plots: far from a blank page
    counts = {rgb: n for n, rgb in colours}

    def near(hex_colour: str) -> int:
        target = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        return sum(
            n
            for rgb, n in counts.items()
            if all(abs(a - b) <= 12 for a, b in zip(rgb, target, strict=True))
        )

    # the first three series colours are drawn as lines, markers and bars
    for colour in PALETTE[:3]:
        assert near(colour) > 300, colour
    print(f"screenshot: {shot}")
