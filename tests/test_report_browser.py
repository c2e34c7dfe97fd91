"""The rendered report, opened in headless Chromium: the table is there and the plots are drawn (screenshot)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from groundtruth.report import build_report, render_report
from tests.test_report import three_jobs

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# matplotlib's default cycle: C0 (human) and C1 (machine) in the cost and count plots
C0, C1 = (31, 119, 180), (255, 127, 14)


def chromium() -> str:
    found = os.environ.get("GT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("headless Chromium is required for this test: `make test` installs Debian's chromium package")
    return found


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    report = build_report("birds", "labeling_experiment_birds", "manual__2026-11-23", three_jobs())
    return render_report(report, tmp_path_factory.mktemp("report"))["html"]


def browse(html: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def color_share(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> float:
    return float(np.mean(np.all(np.abs(image.astype(int) - rgb) <= tolerance, axis=-1)))


def test_screenshot_shows_the_table_and_the_plots(report_html, tmp_path):
    shot = tmp_path / "report.png"
    browse(report_html, tmp_path, "--window-size=1400,5000", f"--screenshot={shot}")
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[0] >= 4000 and image.shape[1] >= 1300
    # the plots are drawn: both series colours cover a visible share of the page
    assert color_share(image, C0) > 0.002 and color_share(image, C1) > 0.002
    # and the page is not one flat colour (text of the tables)
    assert len(np.unique(image.reshape(-1, 3)[::97], axis=0)) > 50


def test_rendered_dom_holds_the_summary_table_and_embedded_plots(report_html, tmp_path):
    dom = browse(report_html, tmp_path, "--dump-dom").stdout
    assert dom.count("<table") >= 2  # our jobs and the seed's published table
    for key in ("iteration-1", "iteration-2", "iteration-3"):
        assert key in dom
    assert dom.count('src="data:image/png;base64,') >= 4
