"""Next-token explorer: the card's code example, live. One forward per prompt (cached logits); temperature,
top-k and top-p re-shape those logits, so a slider never re-runs the model. Two buttons grow the text one token
at a time, greedy or sampled, and chart the step just taken."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from llmlab import nexttoken, plots
from llmlab.modeling import LoadedModel
from ui.demos.pretraining.grow import GROWN_KEY, MAX_PROMPT_CHARS, PROMPT_KEY, LastStep, grow, last_step_chart
from ui.frame import setup, show_code
from ui.instant import instant_demo
from ui.models import shared_model
from ui.settings import NUMBER, SettingsForm, option
from ui.tokens import token_chips

DEFAULT_PROMPT = "The capital of France is"


MAX_SHOWN = 30  # tokens a chart can show: the browser gets the labels of the 30 most likely


@dataclass(frozen=True)
class ExplorerSettings:
    temperature: float = option(
        "Temperature", 1.0, lo=0.05, hi=5.0, step=0.05,
        help="Divides the logits: < 1 sharpens the distribution, > 1 flattens it.",
    )  # fmt: skip
    top_k: int = option(
        "Top-k (0 = all)", 0, lo=0, hi=10_000_000, step=1, widget=NUMBER,
        help="Keep only the k most likely tokens; k of the vocabulary size or more keeps them all.",
    )  # fmt: skip
    top_p: float = option(
        "Top-p", 1.0, lo=0.0, hi=1.0, step=0.01,
        help="Keep the smallest set of top tokens whose probability adds up to p (0 keeps only the top one).",
    )  # fmt: skip
    shown: int = option("Tokens shown", 10, lo=5, hi=MAX_SHOWN)

    def label(self) -> str:
        return f"T = {self.temperature:g}, top-k = {int(self.top_k) or 'all'}, top-p = {self.top_p:g}"


@st.cache_data(max_entries=512, show_spinner=False)
def cached_logits(model_name: str, device: str, token_ids: tuple[int, ...]) -> np.ndarray:
    """One forward pass per (model, prompt); sliders re-use these logits. Shared by sessions (pure data)."""
    model = shared_model(model_name, device).model
    return nexttoken.next_token_logits(model, token_ids).numpy()


def explorer_payload(model_name: str, tokenizer, logits: torch.Tensor) -> dict:
    """What the browser needs to redraw the explorer at any temperature, top-k and top-p: the prompt's logits
    (all of them: top-k and top-p need the whole vocabulary) and the labels of the tokens a chart can show (the
    MAX_SHOWN most likely: the filters and temperature never change the order)."""
    leaders = torch.topk(logits, min(MAX_SHOWN, logits.shape[-1])).indices.tolist()
    return {
        "model": model_name,
        "logits": [round(x, 5) for x in logits.tolist()],
        "labels": {i: plots.token_text(nexttoken.readable_piece(tokenizer, i)) for i in leaders},
    }


def draw(loaded: LoadedModel) -> None:
    st.session_state.setdefault(PROMPT_KEY, DEFAULT_PROMPT)
    prompt = st.text_area(
        "Prompt", key=PROMPT_KEY, height=80, max_chars=MAX_PROMPT_CHARS,
        help="The model sees these tokens and predicts the next one.",
    )  # fmt: skip
    try:
        tokens = nexttoken.encode_prompt(loaded.tokenizer, prompt, nexttoken.context_limit(loaded.model))
    except nexttoken.PromptError as err:
        st.info(str(err), icon="✍️")
        return
    grown_text, grown = st.session_state.get(GROWN_KEY, ("", 0))
    grown = min(grown, len(tokens.ids)) if grown_text == prompt else 0
    with setup(f"The prompt's {len(tokens.ids)} tokens"):
        st.caption(
            f"{len(tokens.ids)} tokens; the small number on each is its id in the vocabulary"
            + (f"; the last {grown} (orange) were appended by the buttons" if grown else "")
        )
        backgrounds = ["rgba(76,120,168,.15)"] * (len(tokens.ids) - grown) + ["rgba(245,133,24,.35)"] * grown
        token_chips(tokens.pieces, tokens.ids, backgrounds=backgrounds)
    if tokens.truncated:
        st.warning(
            f"The prompt is longer than the model's context: only its last {len(tokens.ids)} tokens are used "
            f"({tokens.truncated} dropped from the front).",
            icon="✂️",
        )

    logits = torch.from_numpy(cached_logits(loaded.name, loaded.device, tokens.ids))
    form = SettingsForm(ExplorerSettings, "pt_")
    # Temperature, top-k and top-p re-shape these logits in the browser, while the slider moves (ui/instant.py).
    controls = ["temperature", "top_k", "top_p", "shown"]
    instant_demo("pt_next_token", "next_token", form, controls, explorer_payload(loaded.name, loaded.tokenizer, logits))
    settings = form.done()
    raw = torch.softmax(logits, dim=-1)
    sampling = nexttoken.sampling_distribution(logits, settings.temperature, int(settings.top_k), settings.top_p)

    step = LastStep(loaded.name, prompt, settings.label(), raw, sampling)
    b1, b2 = st.columns(2)
    b1.button("Append most likely", key="pt_append", on_click=grow, args=(loaded.tokenizer, step, "greedy"))
    b2.button("Sample next", key="pt_sample", on_click=grow, args=(loaded.tokenizer, step, "sampled"))
    last_step_chart(loaded, settings.shown)
    show_code(nexttoken.next_token_logits, nexttoken.sampling_distribution)
