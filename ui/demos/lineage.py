"""Home: the lineage on one screen. One question answered by every bundled stage (tiny-base, tiny-sft, tiny-rlhf,
tiny-dpo) side by side, and their next-token distributions at one point of the answer on one chart
(llmlab/lineage.py). The models are the server's shared copies: only read."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from llmlab import lineage, plots
from llmlab.modeling import bundled_models
from llmlab.nexttoken import PromptError
from ui.frame import chart
from ui.models import shared_model
from ui.settings import SettingsForm, option
from ui.text import md_escape

TYPED_KEY = "home_lineage_typed"


@dataclass(frozen=True)
class LineageSettings:
    # The default is a question tiny-sft gets wrong (it answers about Belgium) and the preference stages fix.
    example: str = option("Example question", "What is the capital of Spain?", choices=lineage.EXAMPLES)


@st.cache_data(max_entries=256, show_spinner="Asking every stage…")
def cached_view(names: tuple[str, ...], device: str, question: str) -> lineage.LineageView:
    """Pure data, shared by sessions: the same question gives the same greedy answers and distributions."""
    return lineage.compare({n: shared_model(n, device) for n in names}, question)


def draw(device: str) -> None:
    names = tuple(n for n in lineage.LINEAGE if n in bundled_models())
    st.subheader("The lineage on one screen")
    st.markdown(
        "One question, every stage of this project's model: **tiny-base** (pre-trained: it continues text), "
        "**tiny-sft** (fine-tuned on answers: it answers), **tiny-rlhf** (reward model + online RL) and **tiny-dpo** "
        "(DPO). The preference stages start from tiny-sft and move toward the answers the preference pairs "
        "reward; on most questions they answer exactly as tiny-sft does."
    )
    form = SettingsForm(LineageSettings, "home_lineage_")
    c1, c2 = st.columns(2)
    form.widget("example", c1)
    typed = c2.text_input("…or type your own", key=TYPED_KEY, max_chars=lineage.MAX_QUESTION_CHARS,
                          placeholder="What is the capital of Peru?")  # fmt: skip
    settings = form.done()
    question = typed if typed.strip() else settings.example
    try:
        view = cached_view(names, device, question)
    except PromptError as err:
        st.warning(str(err), icon="✍️")
        return
    if view.truncated:
        st.caption(f"The question was cut to its first {lineage.MAX_QUESTION_CHARS} characters.")
    columns = st.columns(len(view.names))
    for column, name in zip(columns, view.names, strict=True):
        correct = view.correct[name]
        verdict = "" if correct is None else (" ✓ right" if correct else " ✗ wrong")
        column.markdown(f"**{md_escape(name)}**{verdict}")
        column.code(view.answers[name] or "(nothing: it ended at once)", language=None, wrap_lines=True)
    st.caption(
        "Greedy answers (the most likely token each time) to the same input text, the question in the chat "
        f"format: {md_escape(view.input_text)}. ✓/✗: checked against the facts (capitals, languages, "
        "continents); other questions are not checked."
    )
    t = st.select_slider(
        "Where in the answer",
        options=list(range(view.positions)),
        value=view.default_position,
        format_func=lambda i: f"{i}: {view.position_label(i)}",
        key=f"home_lineage_position_{hash(view.input_text) & 0xFFFF}",
        help="The distributions are read along tiny-sft's answer: after the prompt and its first t tokens. "
        "It opens where a stage after SFT first picks another token than tiny-sft (else where they differ most).",
    )
    tokens, probs = view.distribution(t)
    fig = plots.grouped_bars([plots.token_text(x) for x in tokens], probs,
                             f"Next token after “{view.position_label(t)}”, by stage", "next token",
                             "probability")  # fmt: skip
    chart(fig, "home_lineage_chart")
