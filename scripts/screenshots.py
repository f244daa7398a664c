"""Screenshots of the app's pages in headless Chromium, for looking at what a visitor sees.

Starts a fresh server (tests/browser_server.py), opens each page by deep link, optionally clicks a tab,
waits until the script run is over and no loading skeleton is left, and saves a PNG per page, tab and theme
under test-output/screenshots/.

    python scripts/screenshots.py                                 # every page, light theme
    python scripts/screenshots.py --theme dark RLHF "DPO:β sweep"  # some pages, a tab by its label
    python scripts/screenshots.py "DPO:Live DPO:Start DPO" --wait 30  # press a button, shoot 30 s later
    python scripts/screenshots.py "DPO:Beyond pairs: KTO:"            # a label with ':' ends with ':' (no button)
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser_server import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_server, wait_for_app  # noqa: E402

OUT = ROOT / "test-output" / "screenshots"
PAGES = ["", "Pretraining", "SFT", "RLHF", "DPO"]


def settle(page, timeout_s: float = 60) -> None:
    """Wait for the script run to end and every lazy widget to replace its grey skeleton."""
    deadline = time.monotonic() + timeout_s
    wait_for_app(page, timeout_ms=int(timeout_s * 1000))
    # A cold server draws the card first and imports torch after: the status widget can be missing for a moment
    # while the run goes on. Done only when it stays away for a second.
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            break
        wait_for_app(page, timeout_ms=int(max(deadline - time.monotonic(), 1) * 1000))
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stSkeleton"], .stSkeleton').count() == 0:
            break
        time.sleep(0.3)
    time.sleep(1.5)  # plotly's first layout pass


def shoot(base: str, targets: list[str], theme: str, height: int, wait_s: float = 20) -> list[Path]:
    from playwright.sync_api import sync_playwright

    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": height})
        page = context.new_page()
        for target in targets:
            path, _, rest = target.partition(":")
            tab, _, button = rest.rpartition(":") if ":" in rest else (rest, "", "")  # a tab label may hold ':'
            page.goto(f"{base}/{path}")
            settle(page)
            if tab:
                page.get_by_role("tab", name=tab).first.click()
                settle(page)
            if button:
                page.get_by_role("button", name=button).first.click()
                time.sleep(wait_s)  # the live view redraws every 0.5 s: no "finished" state to wait for
            name = re.sub(r"[^A-Za-z0-9]+", "_", f"{path or 'Home'}-{tab}-{button}".strip("-")).strip("_")
            out = OUT / f"{name}-{theme}.png"
            page.screenshot(path=str(out))
            saved.append(out)
            print(out)
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", default=PAGES, help="page path, or 'Page:Tab label'")
    parser.add_argument("--theme", default="light", choices=["light", "dark"])
    parser.add_argument("--height", type=int, default=2000, help="viewport height in pixels")
    parser.add_argument("--wait", type=float, default=20, help="seconds after pressing a button")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with streamlit_server(theme=args.theme) as base:
        shoot(base, args.targets, args.theme, args.height, args.wait)


if __name__ == "__main__":
    main()
