"""The report as a reader sees it: rendered by headless Chromium from disk, screenshot and text;
and every shape of suite laid out at 1400 and 800 CSS pixels without horizontal overflow,
overlapping text or text spilling out of its box.

Skipped where no Chromium is installed (Debian's `chromium` package provides it). Nothing
leaves the machine: the page has no external resources and the browser's network features
are switched off.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

from browser_pipe import CHROMIUM, LAYOUT_CHECK, Browser
from report_suites import SHAPES

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")

BROWSER_TIMEOUT_S = 120
WINDOW = (1400, 1800)
WIDTHS = (1400, 800)


def _chromium(profile, *arguments: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=True)


def test_the_page_renders_with_its_verdicts_and_figures(report, tmp_path):
    url = report.resolve().as_uri()
    screenshot = tmp_path / "page.png"
    _chromium(tmp_path / "profile-shot", f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={screenshot}", url)
    pixels = imread(screenshot)[..., :3]
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    # The verdict cells are coloured: the REFUTED pink (#ffcdd2) is on screen.
    refuted = np.all(np.abs(pixels - np.array([0xFF, 0xCD, 0xD2]) / 255) < 0.02, axis=-1)
    assert refuted.sum() > 500
    # The figures were decoded and drawn: the claimed factors' red (#c0392b) exists only inside them.
    claimed = np.all(np.abs(pixels - np.array([0xC0, 0x39, 0x2B]) / 255) < 0.03, axis=-1)
    assert claimed.sum() > 50

    dom = _chromium(tmp_path / "profile-dom", "--dump-dom", url).stdout
    for text in ("Verdicts on the claims", "REFUTED", "cumulative table", "How each number is measured"):
        assert text in dom
    assert dom.count("<img") >= 6


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Browser(tmp_path_factory.mktemp("chromium-profile")) as found:
        yield found


def _problems(found: dict) -> list[str]:
    problems = []
    if found["scrollWidth"] > found["viewport"]:
        problems.append(f"the page scrolls sideways: {found['scrollWidth']} > {found['viewport']} px")
    problems += [f"overlap: {pair}" for pair in found["overlaps"]]
    problems += [f"text spills out of {box}" for box in found["spills"]]
    problems += [f"outside the page: {box}" for box in found["outside"]]
    return problems


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_lays_out_at_1400_and_800_pixels(suite_reports, browser, name):
    for width in WIDTHS:
        browser.open(suite_reports[name], width)
        folded = browser.evaluate(LAYOUT_CHECK)
        assert folded["boxes"] > 50, "the page did not render"
        # Unfolded too: what a reader sees on opening every <details>.
        browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        unfolded = browser.evaluate(LAYOUT_CHECK)
        assert unfolded["boxes"] > folded["boxes"]
        assert _problems(folded) + _problems(unfolded) == [], f"{name} at {width} px"


BROKEN = """<!DOCTYPE html><html><body style="margin:0">
<h2>heading</h2><p style="margin-top:-1.5em">a paragraph pulled up over the heading</p>
<table style="table-layout:fixed;width:200px"><tr><td>averyveryveryverylongunbreakablewordthatspills</td></tr></table>
<table><tr><td style="white-space:nowrap">{wide}</td></tr></table>
<div class="scroll" style="overflow-x:auto"><table><tr><td style="white-space:nowrap">{wide}</td></tr></table></div>
</body></html>"""


def test_the_layout_check_finds_overflow_overlap_and_spilled_text(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(BROKEN.format(wide="a" * 300))
    browser.open(page, 800)
    found = browser.evaluate(LAYOUT_CHECK)
    assert found["scrollWidth"] > 800
    assert any("heading" in pair and "pulled up" in pair for pair in found["overlaps"])
    assert any("unbreakable" in box for box in found["spills"])
    assert len(found["outside"]) == 1  # the wide table outside a scroll wrapper; the one inside is allowed
