"""Growing the explorer's text one token at a time (ui/demos/pretraining/explorer.py): the two buttons' callback,
and the chart of the step just taken, which slider moves leave as it was. Not a demo of its own."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from llmlab import nexttoken, plots
from llmlab.modeling import LoadedModel
from ui.frame import chart
from ui.runs import kept_figure

MAX_PROMPT_CHARS = 2_000
PROMPT_KEY = "pt_prompt"
GROWN_KEY = "pt_grown"  # (prompt text, how many tokens the buttons appended at its end)
LAST_STEP_KEY = "pt_last_step"  # the LastStep the buttons took (for the "step just taken" chart)
RAW = "raw model (T = 1)"


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


def grow(tokenizer, step: LastStep, mode: str) -> None:
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


def last_step_chart(loaded: LoadedModel, shown: int) -> None:
    last: LastStep | None = st.session_state.get(LAST_STEP_KEY)
    if last is None or last.model != loaded.name:
        st.caption("Press a button to grow the text one token at a time; the chart of that step appears here.")
        return
    version = (last.model, last.prompt, last.token_id, last.mode, last.settings, shown)
    # slider moves leave the step just taken as it was: the figure is rebuilt only for a new step
    figure = kept_figure("pt_last_step_figure", version, lambda: _last_step_figure(loaded, last, shown))
    chart(figure, key="pt_last_step_chart")


def _last_step_figure(loaded: LoadedModel, last: LastStep, shown: int):
    chosen = last.token_id  # a rare draw gets a bar of its own, so it can be seen
    sampling_top = nexttoken.top_tokens(last.sampling, loaded.tokenizer, shown, also=chosen)
    raw_top = [nexttoken.TokenProb(t.token_id, t.text, float(last.raw[t.token_id])) for t in sampling_top]
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
