"""The report as a reader sees it: rendered by headless Chromium from disk, screenshot and text.

Skipped where no Chromium is installed (Debian's `chromium` package provides it). Nothing
leaves the machine: the page has no external resources and the browser's network features
are switched off.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

CHROMIUM = next((path for path in map(shutil.which, ("chromium", "chromium-browser")) if path), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")

BROWSER_TIMEOUT_S = 120
WINDOW = (1400, 1800)


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
