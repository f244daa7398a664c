"""Pre-training: the next-token explorer (the card's code example, live) and the bundled model's timeline."""

import json
from pathlib import Path

import numpy as np
import streamlit as st
import torch

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from llmlab import nexttoken, plots
from llmlab.modeling import LoadedModel
from ui.cards import render_lesson_page
from ui.frame import page_frame
from ui.text import md_escape
from ui.tokens import token_chips

DEFAULT_PROMPT = "The capital of France is"
MAX_PROMPT_CHARS = 2_000
PROMPT_KEY = "pt_prompt"

loaded = page_frame("Pre-training", "📚")


@st.cache_data(max_entries=512, show_spinner=False)
def cached_logits(model_name: str, device: str, token_ids: tuple[int, ...]) -> np.ndarray:
    """One forward pass per (model, prompt); sliders re-use these logits. Shared by sessions (pure data)."""
    from ui.frame import shared_model

    model = shared_model(model_name, device).model
    return nexttoken.next_token_logits(model, token_ids).numpy()


def explorer(loaded: LoadedModel) -> None:
    st.session_state.setdefault(PROMPT_KEY, DEFAULT_PROMPT)
    prompt = st.text_area(
        "Prompt",
        key=PROMPT_KEY,
        height=80,
        max_chars=MAX_PROMPT_CHARS,
        help="The model sees these tokens and predicts the next one.",
    )
    try:
        tokens = nexttoken.encode_prompt(loaded.tokenizer, prompt, nexttoken.context_limit(loaded.model))
    except nexttoken.PromptError as err:
        st.info(str(err), icon="✍️")
        return
    st.caption(f"{len(tokens.ids)} tokens; the small number on each is its id in the vocabulary")
    token_chips(tokens.pieces, tokens.ids)
    if tokens.truncated:
        st.warning(
            f"The prompt is longer than the model's context: only its last {len(tokens.ids)} tokens are used "
            f"({tokens.truncated} dropped from the front).",
            icon="✂️",
        )

    logits = torch.from_numpy(cached_logits(loaded.name, loaded.device, tokens.ids))
    vocab = logits.shape[-1]
    c1, c2, c3 = st.columns(3)
    temperature = c1.slider(
        "Temperature",
        0.05,
        5.0,
        1.0,
        0.05,
        key="pt_temperature",
        help="Divides the logits: < 1 sharpens the distribution, > 1 flattens it.",
    )
    top_k = c2.number_input("Top-k (0 = all)", 0, vocab, 0, key="pt_top_k", help="Keep only the k most likely tokens.")
    top_p = c3.slider(
        "Top-p",
        0.0,
        1.0,
        1.0,
        0.01,
        key="pt_top_p",
        help="Keep the smallest set of top tokens whose probability adds up to p.",
    )
    shown = st.slider("Tokens shown", 5, 30, 10, key="pt_shown")

    raw = torch.softmax(logits, dim=-1)
    sampling = nexttoken.sampling_distribution(logits, temperature, int(top_k), top_p)
    raw_top = nexttoken.top_tokens(raw, loaded.tokenizer, shown)
    sampling_top = nexttoken.top_tokens(sampling, loaded.tokenizer, shown)
    best = raw_top[0]
    st.markdown(f"Most likely next token: **{md_escape(repr(best.text))}** (p = {best.prob:.3f}, id {best.token_id})")
    st.plotly_chart(
        plots.next_token_bars(
            sampling_top,
            title=f"Next-token distribution after the prompt ({loaded.name})",
            compare=raw_top,
            compare_name="raw model (T = 1)",
            name=f"sampling (T = {temperature:g}, top-k = {int(top_k) or 'all'}, top-p = {top_p:g})",
            highlight_id=st.session_state.get("pt_last_choice"),
        ),
        key="pt_next_token_chart",
    )

    b1, b2 = st.columns(2)
    b1.button("Append most likely", key="pt_append", on_click=_grow, args=(loaded.tokenizer, best.token_id))
    b2.button("Sample next", key="pt_sample", on_click=_sample, args=(loaded.tokenizer, sampling))


def _sample(tokenizer, probs: torch.Tensor) -> None:
    generator = st.session_state.setdefault("pt_rng", torch.Generator().manual_seed(0))
    _grow(tokenizer, int(torch.multinomial(probs, 1, generator=generator)))


def _grow(tokenizer, token_id: int) -> None:
    ids = tokenizer(st.session_state[PROMPT_KEY], add_special_tokens=False)["input_ids"] + [token_id]
    st.session_state[PROMPT_KEY] = tokenizer.decode(ids)[:MAX_PROMPT_CHARS]
    st.session_state["pt_last_choice"] = token_id


def timeline(loaded: LoadedModel) -> None:
    path = Path(loaded.source) / "training_history.json"
    if not path.is_file():
        st.info(f"The model {md_escape(loaded.name)} has no saved training history; tiny-base has one.")
        return
    history = json.loads(path.read_text())
    checkpoints = history["checkpoints"]
    steps = [c["step"] for c in checkpoints]
    step = st.select_slider("Training step", options=steps, value=steps[-1], key="pt_timeline_step")
    point = checkpoints[steps.index(step)]
    tokens_per_step = history["tokens_per_step"]
    st.plotly_chart(
        plots.loss_curve(
            range(1, len(history["loss"]) + 1),
            history["loss"],
            title=f"How {loaded.name} learned: loss per step (marker = chosen step)",
            start_line=float(np.log(history["vocab_size"])),
            start_label="ln V: a uniform guess",
        ).add_vline(x=max(step, 1), line_color=plots.HIGHLIGHT),
        key="pt_timeline_loss",
    )
    tops = [nexttoken.TokenProb(i, t["text"], t["prob"]) for i, t in enumerate(point["top"])]
    st.plotly_chart(
        plots.next_token_bars(
            tops, title=f"'{history['probe_prompt']}' → next token at step {step} ({step * tokens_per_step:,} tokens)"
        ),
        key="pt_timeline_dist",
    )
    st.caption("Greedy sample at this step:")
    st.text(point["sample"])


def demo() -> None:
    tab_explore, tab_timeline = st.tabs(["Next-token explorer", "Training timeline"])
    with tab_explore:
        explorer(loaded)
    with tab_timeline:
        timeline(loaded)


render_lesson_page(
    "pretraining",
    demo,
    try_it={
        "pretraining-q1": "the Training timeline tab: the same next-token loss first learns ' the', "
        "then some capital, then ' Paris'.",
    },
)
