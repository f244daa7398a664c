"""A concept page's demo area: the model picker, the demo tabs, and the guard that keeps tracebacks off the page.

A page lists its demos as `Tab(label, module)`: each module of ui/demos/ has `draw(loaded)` (one demo) and
says how it redraws (`REDRAW`, below). `demo_tabs` waits for the part of the server's warm-up the open tab
needs (ui/warm.py), imports that one module, and draws it. Only the open tab runs: a page view, and every rerun
of it, computes and sends one tab's charts (what lets one server carry a room). The open tab is in the URL
(`?tab_<page>=<label>`), so a shared link opens the same tab, and "Reset this page" leaves it open.

This module is light (no torch): a page imports it before its card is drawn.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui import warm
from ui.shell import TAB_KEY_PREFIX

if TYPE_CHECKING:
    from llmlab.modeling import LoadedModel

log = logging.getLogger("llmlab.pages")

EAGER_TABS_ENV = "LLMLAB_EAGER_TABS"  # "1": every tab's content runs on every rerun (the AppTest suite's mode)
FRIENDLY_ERROR = "Something went wrong"  # how `shielded`'s message begins (the load test counts it as an error)
RAISE_ERRORS_ENV = "LLMLAB_RAISE_ERRORS"  # "1": errors reach Streamlit (the test suite: a bug must fail a test)

# How a demo module's tab redraws (its module's REDRAW; FRAGMENT if it says nothing):
FRAGMENT = "fragment"  # its widgets rerun only the tab
FRAGMENT_UNLESS_RUNNING = "fragment unless running"  # a tab with run panels: ui.runs.fragment_unless_running
PAGE = "page"  # never a fragment (it holds a `run_every` fragment of its own, e.g. the crowd-vote counter)


@dataclass(frozen=True)
class Tab:
    label: str
    module: str  # e.g. "ui.demos.pretraining.explorer": its `draw(loaded)` draws the tab


@contextlib.contextmanager
def shielded(what: str) -> Iterator[None]:
    """No raw traceback reaches an attendee: an unexpected error in the block becomes a short message saying what
    to do, and its details go to the server log with a reference the message shows. Streamlit's own control
    flow (st.rerun, st.stop) passes through: it is not an Exception."""
    try:
        yield
    except Exception as err:
        if os.environ.get(RAISE_ERRORS_ENV) == "1":
            raise
        reference = secrets.token_hex(3)
        log.exception("%s failed (reference %s)", what, reference)
        st.error(
            f"{FRIENDLY_ERROR} in {what}. Reload the page to try again; if it happens again, tell the "
            f"presenter (reference {reference}: the details are in the server's log).",
            icon="⚠️",
        )
        if isinstance(err, warm.WarmUpError):
            st.caption(str(err))


def wait_for(stage: int) -> None:
    """Wait for a warm-up stage, with a spinner saying why while it is not done yet."""
    if warm.ready(stage):
        return
    with st.spinner(f"The server is starting: loading {warm.STAGES[stage].name} (once, a few seconds)…"):
        warm.wait(stage)


def load_frame(model_slot: DeltaGenerator) -> LoadedModel:
    """The heavy part of the frame: once the model stage of the warm-up is done, the sidebar's model box."""
    wait_for(warm.MODEL)
    with warm.demo_code():
        from ui.models import model_picker

        return model_picker(model_slot)


def demo_tabs(page: str, model_slot: DeltaGenerator, tabs: Sequence[Tab], above: str | None = None) -> None:
    """The page's demo: the model box, then the tabs, of which only the open one runs (module docstring).
    `above`: a demo module drawn above the tabs (a run panel's buttons act in callbacks, before the script runs,
    so it already shows what they just did).

    With LLMLAB_EAGER_TABS=1 every tab runs, as `st.tabs` does by default, so AppTest can reach them all."""
    with shielded("this page's demo"):
        loaded = load_frame(model_slot)
        if above:
            draw_demo(above, loaded, "this page's demo")
        labels = [tab.label for tab in tabs]
        if os.environ.get(EAGER_TABS_ENV) == "1":
            containers = st.tabs(labels)
        else:
            containers = st.tabs(labels, key=f"{TAB_KEY_PREFIX}{page}", on_change="rerun", bind="query-params")
        for container, tab in zip(containers, tabs, strict=True):
            with container:
                if container.open is not False:  # True: the open tab; None: tabs without state (eager)
                    draw_demo(tab.module, loaded, f"the “{tab.label}” demo")


def draw_demo(module_name: str, loaded: LoadedModel, what: str) -> None:
    with shielded(what):
        wait_for(warm.stage_of(module_name))
        with warm.demo_code():
            module = importlib.import_module(module_name)
            _redrawn(module)(loaded)


@functools.cache
def _redrawn(module) -> Callable[[LoadedModel], None]:
    """The module's `draw`, shielded inside (a fragment rerun runs only what is inside the fragment) and made a
    fragment as its REDRAW says. Built once per module: a fragment's identity is its function's name and place."""
    from ui.runs import fragment_unless_running

    draw = module.draw

    @functools.wraps(draw)
    def guarded(loaded: LoadedModel) -> None:
        with shielded(f"the {module.__name__.rsplit('.', 1)[-1].replace('_', ' ')} demo"), warm.demo_code():
            draw(loaded)

    redraw = getattr(module, "REDRAW", FRAGMENT)
    if redraw == FRAGMENT:
        return st.fragment(guarded)
    if redraw == FRAGMENT_UNLESS_RUNNING:
        return fragment_unless_running(guarded)
    return guarded


@functools.cache
def _source(function: Callable) -> str:
    return inspect.getsource(function)  # reads and parses the module file: ~5 ms, so once per process


def show_code(*functions: Callable) -> None:
    """The functions this demo runs, as they are in llmlab/ (the code shown is the code that runs)."""
    with st.expander("Show the code"):
        for function in functions:
            st.code(_source(function), language="python")


def intro(text: str) -> None:
    """A demo's opening explanation (markdown): a paragraph for a reader. On a projector, where the presenter says
    it, one folded line, so that the demo's main control and chart are on the first screen."""
    from ui.shell import presenter

    if presenter():
        with st.expander("About this demo", icon=":material/info:"):
            st.markdown(text)
    else:
        st.markdown(text)


def setup(label: str) -> contextlib.AbstractContextManager:
    """Where a demo draws what sets it up rather than what it shows (the question to use, text to edit, secondary
    settings): in place for a reader; on a projector, a one-line popover named `label`."""
    from ui.shell import presenter

    return st.popover(label, icon=":material/tune:") if presenter() else contextlib.nullcontext()


def chart(fig, key: str, where=None) -> None:
    """Draw a plotly figure (in `where`: a column or container; default: here). In presenter mode the room gets
    a copy with larger text and thicker lines (`llmlab.plots.for_projector`)."""
    from ui.shell import presenter

    if presenter():
        from llmlab.plots import for_projector

        fig = for_projector(fig)
    (where if where is not None else st).plotly_chart(fig, key=key)
