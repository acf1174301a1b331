"""The HTML report renders in headless Chromium (Debian `chromium`): a screenshot and the DOM."""

import os
import shutil
import subprocess

import pytest
from PIL import Image, ImageStat

from tests.report.helpers import make_run_dir
from tfxfer.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)")
EXPORT_HEADER_RGB = (0xDD, 0xE7, 0xF7)  # `#export-table th` background in tfxfer.report.html.CSS
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium(tmp_path, *args):
    profile = tmp_path / "profile"
    result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_report_renders_with_the_export_table(tmp_path):
    run = make_run_dir(tmp_path / "run")
    html = write_report(run).html
    url = "file://" + os.path.abspath(html)
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", url)
    with Image.open(shot) as im:
        assert im.size == (1200, 2400)
        stat = ImageStat.Stat(im.convert("L"))
        assert stat.stddev[0] > 20  # text, tables and figures, not a blank page
        assert len(im.convert("L").getcolors(maxcolors=1 << 16) or []) > 50
        # the export table is in the screenshot: its header row has a colour nothing else uses
        header = sum(n for n, rgb in im.convert("RGB").getcolors(maxcolors=1 << 22) if rgb == EXPORT_HEADER_RGB)
        assert header > 2000, f"export table header not visible in the screenshot ({header} pixels)"
    dom = _chromium(tmp_path, "--dump-dom", url)
    assert '<table id="export-table">' in dom
    table = dom.split('<table id="export-table">', 1)[1].split("</table>", 1)[0]
    assert "float32" in table and "int8" in table and "pass" in table
    assert dom.count("<img") == 6
