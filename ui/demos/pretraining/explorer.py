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
from ui.frame import chart, show_code
from ui.models import shared_model
from ui.runs import kept_figure
from ui.settings import NUMBER, SettingsForm, option
from ui.text import md_escape
from ui.tokens import token_chips

DEFAULT_PROMPT = "The capital of France is"
MAX_PROMPT_CHARS = 2_000
PROMPT_KEY = "pt_prompt"
GROWN_KEY = "pt_grown"  # (prompt text, how many tokens the buttons appended at its end)
LAST_STEP_KEY = "pt_last_step"  # the LastStep the buttons took (for the "step just taken" chart)
RAW = "raw model (T = 1)"


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
    shown: int = option("Tokens shown", 10, lo=5, hi=30)

    def label(self) -> str:
        return f"T = {self.temperature:g}, top-k = {int(self.top_k) or 'all'}, top-p = {self.top_p:g}"


@dataclass(frozen=True)
class LastStep:
    """The token a button just appended, with the two distributions it was chosen from."""

    model: str
    prompt: str
    settings: str  # ExplorerSettings.label() at the time
    raw: torch.Tensor  # (V,) the model's distribution at T = 1
    sampling: torch.Tensor  # (V,) after temperature, top-k and top-p
    token_id: int = -1
    mode: str = ""  # "greedy" or "sampled"


@st.cache_data(max_entries=512, show_spinner=False)
def cached_logits(model_name: str, device: str, token_ids: tuple[int, ...]) -> np.ndarray:
    """One forward pass per (model, prompt); sliders re-use these logits. Shared by sessions (pure data)."""
    model = shared_model(model_name, device).model
    return nexttoken.next_token_logits(model, token_ids).numpy()


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
    vocab = logits.shape[-1]
    form = SettingsForm(ExplorerSettings, "pt_")
    c1, c2, c3 = st.columns(3)
    form.widget("temperature", c1)
    form.widget("top_k", c2)
    form.widget("top_p", c3)
    form.widget("shown")
    settings = form.done()

    raw = torch.softmax(logits, dim=-1)
    sampling = nexttoken.sampling_distribution(logits, settings.temperature, int(settings.top_k), settings.top_p)
    notes = [f"{int((sampling > 0).sum()):,} of {vocab:,} tokens can be sampled"]
    if settings.top_k >= vocab:
        notes.append(f"top-k {int(settings.top_k):,} ≥ the vocabulary ({vocab:,}), so top-k removes nothing")
    if settings.top_p == 0:
        notes.append("top-p 0 keeps only the most likely token: sampling becomes greedy")
    st.caption("; ".join(notes) + ".")
    raw_top = nexttoken.top_tokens(raw, loaded.tokenizer, settings.shown)
    sampling_top = nexttoken.top_tokens(sampling, loaded.tokenizer, settings.shown)
    best = raw_top[0]
    st.markdown(f"Most likely next token: **{md_escape(repr(best.text))}** (p = {best.prob:.3f}, id {best.token_id})")
    chart(
        plots.next_token_bars(
            sampling_top,
            title=f"Next-token distribution after the prompt ({loaded.name})",
            compare=raw_top,
            compare_name=RAW,
            name=f"sampling ({settings.label()})",
        ),
        key="pt_next_token_chart",
    )

    step = LastStep(loaded.name, prompt, settings.label(), raw, sampling)
    b1, b2 = st.columns(2)
    b1.button("Append most likely", key="pt_append", on_click=_grow, args=(loaded.tokenizer, step, "greedy"))
    b2.button("Sample next", key="pt_sample", on_click=_grow, args=(loaded.tokenizer, step, "sampled"))
    _last_step_chart(loaded, settings.shown)
    show_code(nexttoken.next_token_logits, nexttoken.sampling_distribution)


def _grow(tokenizer, step: LastStep, mode: str) -> None:
    """Button callback: choose the next token (argmax, or a draw from the sampling distribution), append it."""
    if mode == "greedy":
        token_id = int(step.raw.argmax())
    else:
        generator = st.session_state.setdefault("pt_rng", torch.Generator().manual_seed(0))
        token_id = int(torch.multinomial(step.sampling, 1, generator=generator))
    ids = tokenizer(step.prompt, add_special_tokens=False)["input_ids"] + [token_id]
    text = tokenizer.decode(ids)[:MAX_PROMPT_CHARS]
    grown_text, grown = st.session_state.get(GROWN_KEY, ("", 0))
    st.session_state[PROMPT_KEY] = text
    st.session_state[GROWN_KEY] = (text, grown + 1 if grown_text == step.prompt else 1)
    st.session_state[LAST_STEP_KEY] = LastStep(**{**step.__dict__, "token_id": token_id, "mode": mode})


def _last_step_chart(loaded: LoadedModel, shown: int) -> None:
    last: LastStep | None = st.session_state.get(LAST_STEP_KEY)
    if last is None or last.model != loaded.name:
        st.caption("Press a button to grow the text one token at a time; the chart of that step appears here.")
        return
    version = (last.model, last.prompt, last.token_id, last.mode, last.settings, shown)
    # slider moves leave the step just taken as it was: the figure is rebuilt only for a new step
    figure = kept_figure("pt_last_step_figure", version, lambda: _last_step_figure(loaded, last, shown))
    chart(figure, key="pt_last_step_chart")


def _last_step_figure(loaded: LoadedModel, last: LastStep, shown: int):
    chosen = last.token_id
    raw_top = nexttoken.top_tokens(last.raw, loaded.tokenizer, shown)
    sampling_top = nexttoken.top_tokens(last.sampling, loaded.tokenizer, shown)
    if all(t.token_id != chosen for t in sampling_top):  # a rare draw: add its bar so it can be seen
        text = nexttoken.readable_piece(loaded.tokenizer, chosen)
        sampling_top.append(nexttoken.TokenProb(chosen, text, float(last.sampling[chosen])))
        raw_top.append(nexttoken.TokenProb(chosen, text, float(last.raw[chosen])))
    piece = nexttoken.readable_piece(loaded.tokenizer, chosen)
    how = "the most likely token" if last.mode == "greedy" else f"sampled with {last.settings}"
    return plots.next_token_bars(
        sampling_top,
        title=f"Step just taken: {piece!r} was appended ({how}; orange bar)",
        compare=raw_top,
        compare_name=RAW,
        name=f"sampling ({last.settings})",
        highlight_id=chosen,
    )
