"""Shared test set-up: the repo on sys.path (AppTest does not add it), quiet torch threads, shared fixtures."""

import itertools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# AppTest tests reach every tab of a page in one run (the browser tests' server runs the lazy tabs users get;
# tests/test_tabs.py checks those in AppTest too).
os.environ["LLMLAB_EAGER_TABS"] = "1"
# An unexpected error in a page fails the test (users get a short message instead: ui.frame.shielded).
os.environ["LLMLAB_RAISE_ERRORS"] = "1"
# Figures built from plotly JSON (llmlab.plots.from_spec) are checked by plotly in every test that draws one.
os.environ["LLMLAB_VALIDATE_FIGURES"] = "1"

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per xdist worker: two workers of two threads each on two cores left OpenMP threads waiting
    # for descheduled partners (the suite ran 14 min instead of ~9; training under load stalled up to 10x).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from streamlit import config as streamlit_config  # noqa: E402

# .streamlit/config.toml hides error details from attendees; a failing test must show them.
streamlit_config.set_option("client.showErrorDetails", "full")


@pytest.fixture(scope="session")
def tiny_base():
    from llmlab.modeling import load_model

    return load_model("tiny-base", "cpu")


# -- AppTest helpers shared by the page tests ------------------------------------------------------------

_session_ids = itertools.count()


def locked(load, *args, **kwargs):
    """A from_pretrained under the project's load lock: it is not thread-safe, and an AppTest's warm-up thread may be
    loading in this process (llmlab.modeling.LOAD_LOCK)."""
    from llmlab.modeling import LOAD_LOCK

    with LOAD_LOCK:
        return load(*args, **kwargs)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module (the browser tests skip themselves without it)."""
    from playwright.sync_api import sync_playwright

    from tests.browser_server import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def session(monkeypatch):
    """Every test's AppTests get a session id of their own: AppTest otherwise gives every instance the same
    id, and the session-scoped run registry (ui/runs.py) would carry one test's jobs into the next. Within a
    test all AppTests share the id (two tabs of one browser session); set `session["id"]` to switch."""
    from streamlit.runtime.scriptrunner import script_runner

    current = {"id": f"test-session-{next(_session_ids)}"}
    original = script_runner.ScriptRunner.__init__

    def init(self, *args, session_id, **kwargs):
        original(self, *args, session_id=current["id"], **kwargs)

    monkeypatch.setattr(script_runner.ScriptRunner, "__init__", init)
    return current


def open_page(page: str, query: dict[str, str] | None = None, timeout_s: float = 180):
    """A fresh AppTest of `page` (e.g. "pages/4_DPO.py") opened through app.py, with URL parameters
    `query`, run once and checked free of exceptions."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout_s)
    at.switch_page(page)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def chart(at, key_suffix: str) -> dict:
    """The figure JSON of the plotly chart whose widget key ends with `key_suffix`."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(key_suffix):
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart {key_suffix}; have {[e.proto.id[-25:] for e in at.get('plotly_chart')]}")


def instant(at, key: str) -> dict | None:
    """The data a browser-computed demo (ui/instant.py) was drawn with: its controls and numbers; None if the page
    did not draw it."""
    for element in at.get("bidi_component"):
        if element.proto.id.endswith(f"-{key}") and element.proto.json:
            return json.loads(element.proto.json)
    return None


@dataclass(frozen=True)
class BrowserControl:
    """A setting drawn as a browser control of a browser-computed demo (ui/instant.py), as the page sent it."""

    key: str
    value: object
    options: list | None  # a choice control's choices


def browser_control(at, key: str) -> BrowserControl | None:
    """The browser control for the setting `key`, or None if no browser-computed demo on the page drew it."""
    for element in at.get("bidi_component"):
        data = json.loads(element.proto.json or "{}")
        for control in data.get("controls", []) if isinstance(data, dict) else []:
            if control.get("key") == key:
                return BrowserControl(key, control["value"], control.get("choices"))
    return None


def set_in_browser(at, key: str, value) -> None:
    """What the end of a drag on a browser control does (ui/instant.py): the setting's new value goes to the
    settings form; run `at.run()` after it."""
    from ui.settings import KEPT

    at.session_state[KEPT] = {**at.session_state[KEPT], key: value}


def model_downloads(at) -> list[str]:
    """The captions of the model downloads on the page (ui/download.py: each says how to load its zip)."""
    from ui.download import LABEL

    if not any(b.proto.label == LABEL for b in at.get("download_button")):
        return []
    return [c.value for c in at.caption if c.value.startswith("Unzip `")]


def has_chart(at, key_suffix: str) -> bool:
    return any(e.proto.id.endswith(key_suffix) for e in at.get("plotly_chart"))


def texts(at) -> str:
    """Every caption, markdown and status message of the page, as one string."""
    return " ".join(e.value for e in [*at.caption, *at.markdown, *at.success, *at.info, *at.warning, *at.error])


@pytest.fixture(autouse=True)
def vote_data_dir(tmp_path_factory, monkeypatch):
    """Pages draw the crowd-vote tab: keep every test's votes out of the repo's data/ folder."""
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(tmp_path_factory.mktemp("votes")))
    monkeypatch.delenv("LLMLAB_DATABASE_URL", raising=False)
