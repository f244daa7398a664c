"""Real-browser tests: Debian's Chromium through Playwright against a fresh `streamlit run app.py`.

They check what only a browser shows: deep links on a fresh server, charts drawn, a tab click, a shared link's
slider values. (The sliders computed in the browser are dragged in tests/test_instant.py.)
Screenshots of every page land in test-output/screenshots/. Skipped where Chromium or Playwright is missing.
"""

import pytest

from tests.browser_server import ROOT, browser_available, streamlit_server, wait_for_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not browser_available(), reason="needs /usr/bin/chromium and the playwright package"),
]

SHOTS = ROOT / "test-output" / "screenshots"
PAGES = {"": "LLM Training Lab", "Pretraining": "Pre-training", "SFT": "Supervised Fine-tuning (SFT)",
         "RLHF": "RLHF (Reinforcement Learning from Human Feedback)", "DPO": "DPO (Direct Preference Optimization)"}  # fmt: skip


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


@pytest.fixture
def page(browser):
    # Tall viewport: Streamlit scrolls its own container, so a full-page screenshot is the viewport.
    context = browser.new_context(viewport={"width": 1400, "height": 3200})
    page = context.new_page()
    yield page
    context.close()


@pytest.mark.parametrize("path", list(PAGES))
def test_deep_link_renders_page_on_fresh_server(server, page, path):
    page.goto(f"{server}/{path}")
    wait_for_app(page)
    page.get_by_role("heading", name=PAGES[path]).first.wait_for(timeout=30_000)
    if path:
        page.get_by_role("heading", name="Think it through").wait_for(timeout=60_000)
    wait_for_app(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{path or 'Home'}.png"), timeout=120_000)


def test_a_tab_click_draws_that_tab_and_puts_it_in_the_url(server, page):
    page.goto(f"{server}/Pretraining")
    wait_for_app(page)
    page.locator(".instant .chart").first.wait_for(timeout=60_000)  # the explorer (ui/instant.py)
    assert page.locator(".st-key-pt_live_start").count() == 0  # a closed tab's content is not even sent
    page.get_by_role("tab", name="Watch it learn").click()
    page.locator(".st-key-pt_live_start").wait_for(timeout=60_000)
    page.wait_for_function("() => location.search.includes('tab_pretraining=Watch')", timeout=30_000)
    wait_for_app(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_shared_link_sets_the_dpo_beta_slider(server, page):
    page.goto(f"{server}/DPO?tab_dpo=Live+DPO&dpo_beta=0.5&dpo_steps=100")
    wait_for_app(page)
    assert page.get_by_role("tab", name="Live DPO").get_attribute("aria-selected") == "true"
    # react-aria's range inputs are visually hidden: wait for it to exist.
    beta = page.locator('.st-key-dpo_beta input[type="range"]')
    beta.wait_for(state="attached", timeout=60_000)
    assert beta.get_attribute("aria-valuetext") == "0.5"  # the select slider shows the link's β, not 0.1
    assert page.locator('.st-key-dpo_steps input[type="range"]').get_attribute("aria-valuetext") == "100"
    assert "dpo_beta=0.5" in page.url and "dpo_steps=100" in page.url  # the address still shares this view
