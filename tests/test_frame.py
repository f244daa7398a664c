"""The page frame (ui/frame.py, ui/warm.py): errors become a short message with the details in the server log,
every page lists demo modules that exist, and the core never imports streamlit."""

import importlib
import logging
import pkgutil
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from llmlab.lessons import load_lessons
from tests.conftest import ROOT
from ui import warm
from ui.frame import FRIENDLY_ERROR, RAISE_ERRORS_ENV


def failing_page():
    import streamlit as st

    from ui.frame import shielded

    with shielded("the broken demo"):
        st.markdown("before the error")
        raise KeyError("a bug")
    st.markdown("after the error: the page goes on")


def test_an_unexpected_error_is_a_short_message_and_its_traceback_goes_to_the_log(monkeypatch, caplog):
    monkeypatch.delenv(RAISE_ERRORS_ENV)
    at = AppTest.from_function(failing_page)
    with caplog.at_level(logging.ERROR, logger="llmlab.pages"):
        at.run()
    assert not at.exception  # no traceback on the page
    [error] = at.error
    assert error.value.startswith(f"{FRIENDLY_ERROR} in the broken demo") and "tell the presenter" in error.value
    reference = error.value.split("reference ")[1][:6]
    record = next(r for r in caplog.records if reference in r.getMessage())
    assert record.exc_info[0] is KeyError  # the details are in the log, under the reference the page shows
    assert at.markdown[-1].value == "after the error: the page goes on"


def test_with_raise_errors_set_the_test_suite_sees_the_error():
    at = AppTest.from_function(failing_page)
    at.run()
    assert at.exception and "a bug" in at.exception[0].message


def rerun_page():
    import streamlit as st

    from ui.frame import shielded

    st.session_state.setdefault("runs", 0)
    st.session_state.runs += 1
    with shielded("a demo"):
        if st.session_state.runs == 1:
            st.rerun()  # Streamlit's control flow is not an error
    st.markdown(f"runs: {st.session_state.runs}")


def test_streamlit_control_flow_passes_through_the_guard(monkeypatch):
    monkeypatch.delenv(RAISE_ERRORS_ENV)
    at = AppTest.from_function(rerun_page)
    at.run()
    assert not at.error and at.markdown[-1].value == "runs: 2"


def demo_modules() -> list[str]:
    package = importlib.import_module("ui.demos")
    return [m.name for m in pkgutil.walk_packages(package.__path__, "ui.demos.") if not m.ispkg]


def page_tabs(path: str) -> list[tuple[str, str]]:
    """(label, module) of every Tab(...) a page file lists, read from its source."""
    import ast

    tree = ast.parse((ROOT / path).read_text())
    return [
        (node.args[0].value, node.args[1].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Tab"
    ]


PAGES = {"pretraining": "pages/1_Pretraining.py", "sft": "pages/2_SFT.py", "rlhf": "pages/3_RLHF.py",
         "dpo": "pages/4_DPO.py"}  # fmt: skip


@pytest.mark.parametrize("lesson_id", PAGES)
def test_every_tab_is_a_demo_module_and_every_try_it_hint_names_a_tab(lesson_id):
    tabs = page_tabs(PAGES[lesson_id])
    assert tabs, "the page lists its demos as Tab(label, module)"
    for _, module in tabs:
        assert module in demo_modules(), module
        assert callable(importlib.import_module(module).draw), module
    labels = {label for label, _ in tabs}
    for hint in load_lessons()[lesson_id].try_it:
        assert hint.tab in labels, f"{hint.qa_id} names a tab the page does not have: {hint.tab!r}"


def test_the_warm_up_lists_modules_that_exist_and_imports_every_demo():
    listed = warm.STAGES[warm.MODEL].modules
    for name in listed:
        importlib.util.find_spec(name)  # raises if the module does not exist
    later = warm.STAGES[warm.TRAINERS].modules()
    assert set(demo_modules()) <= set(listed) | set(later)
    assert warm.stage_of("ui.demos.pretraining.explorer") == warm.MODEL
    assert warm.stage_of("ui.demos.dpo.loss") == warm.MODEL
    assert warm.stage_of("ui.demos.sft.live") == warm.TRAINERS


def test_the_core_never_imports_streamlit():
    """llmlab/ is the compute core (minGPT's rule: the library never knows the demos that use it)."""
    modules = sorted(p.stem for p in (ROOT / "llmlab").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module('llmlab.' + name)\n"
        "print(sorted(m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout[:300]


def test_the_model_stage_imports_no_trainer():
    """What stage 1 imports must not pull in trl or datasets: the demos it serves would wait for them."""
    code = (
        "import importlib, sys\n"
        "from ui import warm\n"
        "for name in warm.STAGES[warm.MODEL].modules: importlib.import_module(name)\n"
        "print(sorted(m for m in ('trl', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-300:]
