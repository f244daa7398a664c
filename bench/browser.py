"""Debian's Chromium for the browser benchmark and the browser tests (driven by Playwright, never
`playwright install`): where it is, and the flags it needs on a machine with no network and no GPU."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # without these, Chromium's own connections fail on a closed network
    "--disable-component-update",
    "--disable-sync",
]


def browser_available() -> bool:
    if not Path(CHROMIUM).exists():
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True
