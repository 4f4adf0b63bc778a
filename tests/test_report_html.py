"""The HTML report as a person sees it: rendered in headless Chromium for one
model and for 36 models x 7 datasets.  The page itself never scrolls
sideways (wide tables scroll inside their box), every plot loads, long
names fit, and no "None"/"nan" reaches the page.  Screenshots land in
$CODEEVAL_SCREENSHOT_DIR when it is set, for looking at."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from synthetic import DATASETS, case, many, write

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium); CI installs it")

# What the page measures of itself once laid out (read back through --dump-dom).
PROBE = """<script>
window.addEventListener('load', () => {
  const boxes = [...document.querySelectorAll('.box')].map(b => ({
    scrolls: b.scrollWidth > b.clientWidth + 1, fits: b.getBoundingClientRect().right <= innerWidth + 1}));
  const imgs = [...document.images].map(i => ({loaded: i.complete && i.naturalWidth > 0,
    fits: i.getBoundingClientRect().width <= document.body.clientWidth + 1}));
  document.body.setAttribute('data-layout', JSON.stringify({
    page: document.documentElement.scrollWidth, view: innerWidth, boxes, imgs,
    text: document.body.innerText.length}));
});
</script></body>"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _layout(html: Path, width: int) -> dict:
    probed = html.with_name("probed.html")
    probed.write_text(html.read_text().replace("</body>", PROBE))
    out = _chromium(f"--window-size={width},900", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri())
    found = re.search(r'data-layout="([^"]*)"', out.stdout)
    assert found, out.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"'))


def _screenshot(html: Path, name: str, width: int, height: int) -> Path:
    where = Path(os.environ.get("CODEEVAL_SCREENSHOT_DIR") or html.parent)
    where.mkdir(parents=True, exist_ok=True)
    png = where / f"{name}.png"
    _chromium(f"--window-size={width},{height}", "--hide-scrollbars", f"--screenshot={png}", html.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return png


def _not_blank(png: Path) -> bool:
    from PIL import Image

    with Image.open(png) as im:
        colours = im.convert("RGB").resize((200, 200)).getcolors(maxcolors=100_000) or []
    return len(colours) > 50


@pytest.mark.parametrize("shape", ["one_model", "36_models"])
def test_the_html_report_reads_well_in_a_browser(tmp_path: Path, shape: str) -> None:
    if shape == "one_model":
        results = [case("smollm2_135m_instruct", d, n=5, tokens_per_s=None, load_s=None) for d in DATASETS]
        out = write(results, tmp_path, engine="replay")
    else:
        out = write(many(), tmp_path)
    html = out["paths"]["html"]
    text = html.read_text()
    assert "None" not in re.sub(r"<[^>]+>", " ", text.split("<h2>Failing samples")[0])
    assert not re.search(r"\bnan\b", text)
    for width in (1400, 900):
        layout = _layout(html, width)
        assert layout["page"] <= layout["view"], f"the page scrolls sideways at {width}px: {layout}"
        assert all(b["fits"] for b in layout["boxes"]), layout["boxes"]
        assert layout["imgs"] and all(i["loaded"] and i["fits"] for i in layout["imgs"]), layout["imgs"]
    if shape == "36_models":
        # the score table (7 datasets with CIs) and the performance table are wider than a 900 px window:
        # they scroll inside their boxes
        assert any(b["scrolls"] for b in _layout(html, 900)["boxes"])
    png = _screenshot(html, f"report_{shape}", 1400, 2400)
    assert _not_blank(png)
