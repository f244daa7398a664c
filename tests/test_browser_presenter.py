"""Presenter mode in Chromium, at the sizes projectors show: the open demo's main control and its chart on the first
screen of every page, the sidebar folded, the join QR code decoding to the attendee link, diagrams without a white
box on the dark theme. Screenshots of every page in presenter mode, light and dark, land in
test-output/screenshots/presenter-*.png.
"""

import base64
import io
import urllib.parse

import numpy as np
import pytest

from tests.browser_server import ROOT, browser_available, streamlit_server, wait_for_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not browser_available(), reason="needs /usr/bin/chromium and the playwright package"),
]

SHOTS = ROOT / "test-output" / "screenshots"
SIZES = [(1280, 720), (1920, 1080)]
KL_SWEEP = urllib.parse.urlencode({"tab_rlhf": "2 · KL sweep (exact, instant)"})
# (page and query, its open demo's main control, its chart: what the room must see without scrolling)
DEMOS = [
    ("", ".st-key-join", '[data-testid="stGraphVizChart"] svg'),  # Home: the pipeline, and Join
    ("Pretraining", '.instant input[aria-label="Temperature"]', ".instant svg.chart"),
    ("SFT", ".st-key-sft_mask_example", ".token-chips"),  # the loss mask is drawn as the chips
    ("RLHF", ".st-key-rl_rm_start", None),  # the reward model's chart appears once it is trained
    (f"RLHF?{KL_SWEEP}", '.instant input[aria-label="β, the KL coefficient (log scale)"]', ".instant svg.chart"),
    ("DPO", '.instant input[aria-label="β (drag: the orange curves follow)"]', ".instant svg.chart"),
]
CHART_SHOWN_PX = 150  # at least its title and first rows


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


def open_presenter(browser, url: str, path: str, size: tuple[int, int]):
    page = browser.new_context(viewport={"width": size[0], "height": size[1]}).new_page()
    page.goto(f"{url}/{path}{'&' if '?' in path else '?'}presenter=1")
    wait_for_app(page)
    page.locator(".st-key-join").wait_for(timeout=60_000)
    return page


def box(page, selector: str) -> dict:
    found = page.locator(selector).first
    found.wait_for(state="attached", timeout=90_000)
    return found.bounding_box()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    ("path", "control", "chart"),
    DEMOS,
    ids=[(d[0].split("?")[0] or "Home") + ("-kl" if "?" in d[0] else "") for d in DEMOS],
)
def test_the_open_demo_is_on_the_first_screen(browser, server, size, path, control, chart):  # fmt: skip
    width, height = size
    page = open_presenter(browser, server, path, size)
    try:
        if chart:
            page.locator(chart).first.wait_for(timeout=90_000)
        wait_for_app(page)
        page.wait_for_timeout(500)  # the last layout shifts (fonts, the component's first draw)
        c = box(page, control)
        assert c is not None and 0 <= c["y"] and c["y"] + c["height"] <= height, f"main control at {c}"
        if chart:
            g = box(page, chart)
            assert 0 <= g["y"] <= height - min(CHART_SHOWN_PX, g["height"]), f"chart at {g}, viewport {size}"
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_attribute("data-collapsed") == "true"  # folded: the demo gets the width
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.context.close()


def test_the_join_qr_code_opens_the_same_view_for_an_attendee(browser, server):
    import zxingcpp
    from PIL import Image

    from ui.join import _network_ip, join_url

    page = open_presenter(browser, server, f"RLHF?{KL_SWEEP}&rl_sweep_beta=0.01", (1280, 720))
    try:
        page.get_by_role("button", name="Join").first.click()
        dialog = page.get_by_role("dialog")
        image = dialog.locator("img").first
        image.wait_for(timeout=30_000)
        data = page.evaluate(
            "async (src) => { const r = await fetch(src); const b = new Uint8Array(await r.arrayBuffer());"
            " let s = ''; b.forEach((x) => s += String.fromCharCode(x)); return btoa(s); }",
            image.get_attribute("src"),
        )
        pixels = np.array(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"))
        found = zxingcpp.read_barcodes(pixels)
        assert len(found) == 1
        shown = urllib.parse.urlsplit(page.url)
        query = dict(urllib.parse.parse_qsl(shown.query))
        expected = join_url(f"{shown.scheme}://{shown.netloc}{shown.path}", query, _network_ip())
        assert found[0].text == expected
        decoded = urllib.parse.urlsplit(found[0].text)
        assert "presenter" not in decoded.query and "rl_sweep_beta=0.01" in decoded.query
        assert decoded.path == "/RLHF" and "tab_rlhf=" in decoded.query
        assert expected in dialog.inner_text()  # the address in large text too
        sessions = dialog.get_by_test_id("stMetricValue").inner_text()
        assert int(sessions) >= 1  # this tab, at least
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "presenter-join.png"))
    finally:
        page.context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_presenter_screenshots_and_diagrams_without_a_white_box(browser, theme):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server(theme=theme) as url:
        for path in ("", "Pretraining", "SFT", "RLHF", f"RLHF?{KL_SWEEP}", "DPO"):
            page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
            page.goto(f"{url}/{path}{'&' if '?' in path else '?'}presenter=1")
            wait_for_app(page)
            page.wait_for_timeout(3000)
            wait_for_app(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            name = (path.split("?")[0] or "Home") + ("-kl" if "?" in path else "")
            page.screenshot(path=str(SHOTS / f"presenter-{theme}-{name}.png"))
            if path == "RLHF":  # the pipeline diagram, unfolded
                page.get_by_text("The pipeline: SFT model").click()
            if path in ("", "RLHF"):
                svg = page.locator('[data-testid="stGraphVizChart"] svg').first
                svg.wait_for(timeout=30_000)
                # graphviz draws its background as the graph's first polygon: none, or not white
                fills = [p.get_attribute("fill") for p in svg.locator("g.graph > polygon").all()]
                assert not [f for f in fills if f and f.lower() in ("white", "#ffffff", "#fff")], fills
            page.context.close()
