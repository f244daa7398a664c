"""Start the app on a free loopback port and open it in Debian's Chromium (Playwright, no downloaded browser).

Used by the browser tests and by `scripts/screenshots.py`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bench import load_test
from bench.browser import CHROMIUM, CHROMIUM_ARGS, browser_available  # noqa: F401  (the tests' one import site)

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def streamlit_server(theme: str = "light", timeout_s: float = 60) -> Iterator[str]:
    """A fresh `streamlit run app.py` on 127.0.0.1 (bench/load_test.py starts it); yields its base URL."""
    with load_test.streamlit_server(timeout_s=timeout_s, theme=theme) as server:
        yield server.url


def wait_for_app(page, timeout_ms: int = 90_000) -> None:
    """Wait until the script run has finished (no 'Running…' status) and the main block has content."""
    page.wait_for_selector('[data-testid="stMainBlockContainer"]', timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && document.querySelectorAll('[data-testid=\"stMarkdownContainer\"]').length > 3",
        timeout=timeout_ms,
    )
