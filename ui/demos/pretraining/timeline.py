"""Training timeline: how the bundled tiny-base learned, from its saved history (instant: no training). A slider
walks the checkpoints; the probe's next-token distribution and the greedy sample at each."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import streamlit as st

from llmlab import nexttoken, plots
from llmlab.modeling import DEFAULT_MODEL, LoadedModel
from ui.frame import chart
from ui.models import shared_model
from ui.text import md_escape


@st.cache_data(show_spinner=False)
def load_history(path: str) -> dict | None:
    file = Path(path) / "training_history.json"
    return json.loads(file.read_text()) if file.is_file() else None


def draw(loaded: LoadedModel) -> None:
    history = load_history(loaded.source)
    if history is None:
        history = load_history(shared_model(DEFAULT_MODEL, loaded.device).source)
        st.caption(f"{md_escape(loaded.name)} has no saved training history; showing tiny-base's.")
    checkpoints = history["checkpoints"]
    steps = [c["step"] for c in checkpoints]
    step = st.select_slider("Training step", options=steps, value=steps[-1], key="pt_timeline_step")
    point = checkpoints[steps.index(step)]
    tokens_per_step = history["tokens_per_step"]
    vocab = history["vocab_size"]
    loss_here = history["loss"][step - 1] if step else math.log(vocab)
    st.caption(
        f"Step {step} of {len(history['loss'])}: {step * tokens_per_step:,} tokens read, "
        f"loss {loss_here:.3f} nats/token ({'ln V before any step' if not step else 'this step'})."
    )
    chart(
        plots.loss_curve(
            range(1, len(history["loss"]) + 1),
            history["loss"],
            title="How tiny-base learned: loss per step (orange line = chosen step)",
            start_line=float(np.log(vocab)),
            start_label="ln V: a uniform guess",
        ).add_vline(x=max(step, 1), line_color=plots.HIGHLIGHT),
        key="pt_timeline_loss",
    )
    tops = [nexttoken.TokenProb(i, t["text"], t["prob"]) for i, t in enumerate(point["top"])]
    chart(
        plots.next_token_bars(
            tops, title=f"'{history['probe_prompt']}' → next token at step {step} ({step * tokens_per_step:,} tokens)"
        ),
        key="pt_timeline_dist",
    )
    # Every token that was the top-1 at some checkpoint, with its probability at each (0 when out of the top 10).
    leaders = list(dict.fromkeys(c["top"][0]["text"] for c in checkpoints))
    lines = {
        text: [next((t["prob"] for t in c["top"] if t["text"] == text), 0.0) for c in checkpoints] for text in leaders
    }
    chart(
        plots.token_probability_lines(
            steps, lines, title="Who was the top-1 when: probability at each saved checkpoint", highlight=" Paris"
        ),
        key="pt_timeline_lines",
    )
    st.caption("Greedy sample at this step:")
    st.text(point["sample"])
