"""The one card renderer: a lesson from lessons/ laid out around its page's live demo.

Reading order follows the card: title and intuition, the problem, then the demo (left, filled in by the page
after the card is drawn) beside the "Think it through" Q&A (right), then how it works, the code example, the
misconception, where you see it, the summary and the resources. Card text is escaped, so it shows exactly as
written.
"""

from __future__ import annotations

import html

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from llmlab.lessons import Lesson, WorkshopRoute, load_lessons, load_workshop
from ui.demos import code_example
from ui.shell import TAB_KEY_PREFIX, presenter
from ui.text import md_escape


@st.cache_resource
def lessons() -> dict[str, Lesson]:
    """Parsed once per process; Lesson objects are frozen, so sharing them is safe."""
    return load_lessons()


@st.cache_resource
def workshop() -> tuple[str, tuple[WorkshopRoute, ...]]:
    """Home's workshop routes (lessons/workshop/routes.md), parsed once per process like the cards."""
    return load_workshop()


QUESTIONS_FOLDED = "presenter_questions_folded"  # presenter mode: the questions column folded to a strip
REVEALED = "presenter_revealed"  # presenter mode: the ids of the questions whose answer was revealed


def lesson_layout(lesson_id: str) -> DeltaGenerator:
    """Draw the whole card of one lesson around an empty "Live demo" area, and return that area: the page fills
    it afterwards (`with area: demo_tabs(...)`), so the card can be read while the demo loads. Each question
    shows its "Try it" hint (lessons/try-it/), with a button that opens the demo tab it names.

    In presenter mode the demo is the first screen: the title and intuition take one line, the problem and the
    rest of the card fold away below the demo, the questions column can fold to a strip, and each answer stays
    hidden until the presenter reveals it (the room answers first)."""
    lesson = lessons()[lesson_id]
    if presenter():
        return _presenter_layout(lesson)
    st.title(lesson.title)
    st.caption(" · ".join(lesson.tags))
    st.info(md_escape(lesson.intuition), icon="💡")
    with st.expander("What problem it solves", expanded=True):
        _paragraphs(lesson.problem)

    demo_col, qa_col = st.columns([3, 2], gap="large")
    with demo_col:
        st.subheader("Live demo")
        area = st.container()
    with qa_col:
        render_questions(lesson)
    st.divider()
    _card_body(lesson)
    return area


def _presenter_layout(lesson: Lesson) -> DeltaGenerator:
    from ui.join import join_button

    head, join = st.columns([7, 1], vertical_alignment="center")
    head.html(
        f'<div class="presenter-head" title="{html.escape(lesson.intuition)}"><b>{html.escape(lesson.title)}</b>'
        f" · 💡 {html.escape(lesson.intuition)}</div>"
    )
    join_button(join)
    folded = bool(st.session_state.get(QUESTIONS_FOLDED))
    demo_col, qa_col = st.columns([24, 1] if folded else [3, 2], gap="medium")
    area = demo_col.container()
    with qa_col:
        if folded:
            st.button("❓", key="unfold_questions", help="Show the questions", on_click=_fold, args=(False,))
        else:
            render_questions(lesson)
    st.divider()
    with st.expander("The whole card: intuition, problem, how it works, code, misconception, summary, resources"):
        st.caption(" · ".join(lesson.tags))
        st.info(md_escape(lesson.intuition), icon="💡")
        st.subheader("What problem it solves")
        _paragraphs(lesson.problem)
        _card_body(lesson)
    return area


def _fold(folded: bool) -> None:
    st.session_state[QUESTIONS_FOLDED] = folded


def _reveal(qa_id: str) -> None:
    st.session_state[REVEALED] = st.session_state.get(REVEALED, set()) | {qa_id}


def _card_body(lesson: Lesson) -> None:
    how_col, code_col = st.columns(2, gap="large")
    with how_col:
        st.subheader("How it works")
        for block in lesson.how_it_works:
            if block.kind == "code":
                st.code(block.text, language="python", wrap_lines=True)
            else:
                _paragraphs(block.text)
    with code_col:
        st.subheader("Code example")
        st.code(lesson.code_example, language="python", wrap_lines=True)
        st.subheader("Common misconception")
        st.warning(md_escape(lesson.misconception), icon="⚠️")
    run_it = "Run this code example here: what changed from the card, and why"
    # (presenter mode draws the card body in an expander already, and expanders do not nest)
    with st.container(border=True) if presenter() else st.expander(run_it):
        if presenter():
            st.markdown(f"**{run_it}**")
        code_example.draw(lesson)
    st.subheader("Where you see it")
    for line in lesson.where_you_see_it:
        st.markdown("- " + md_escape(line))
    st.subheader("English summary")
    _paragraphs(lesson.summary)
    st.subheader("Key resources")
    if lesson.resources:
        for resource in lesson.resources:
            label = md_escape(resource.text)
            st.markdown(f"- [{label}]({resource.url})" if resource.url else f"- {label}")
    else:
        st.caption("This card lists no resources.")


def render_questions(lesson: Lesson) -> None:
    on_projector = presenter()
    if on_projector:
        head, fold = st.columns([5, 1], vertical_alignment="center")
        head.subheader("Think it through")
        fold.button("⇥", key="fold_questions", help="Fold the questions to a strip", on_click=_fold, args=(True,))
    else:
        st.subheader("Think it through")
    revealed = st.session_state.get(REVEALED, set())
    for number, qa in enumerate(lesson.qas, start=1):
        if not on_projector:
            with st.expander(f"Q{number}. {md_escape(qa.question)}"):
                _paragraphs(qa.answer)
        else:  # predict, then reveal: the answer stays hidden until the presenter shows it
            st.markdown(f"**Q{number}.** {md_escape(qa.question)}")
            if qa.id in revealed:
                with st.container(border=True):
                    _paragraphs(qa.answer)
            else:
                st.button("Reveal the answer", key=f"reveal_{qa.id}", on_click=_reveal, args=(qa.id,),
                          icon=":material/visibility:")  # fmt: skip
        hint = lesson.try_it_for(qa.id)
        if hint is not None:
            st.caption(f"🧪 Try it in “{md_escape(hint.tab)}”: {md_escape(hint.text)}")
            st.button(
                f"Open “{hint.tab}”",
                key=f"try_{qa.id}",
                type="tertiary",
                icon=":material/arrow_forward:",
                on_click=_open_tab,
                args=(lesson.id, hint.tab),
            )


def _open_tab(page: str, label: str) -> None:
    """A "Try it" button: open the page's demo tab that shows the question (the tab's state is in the URL)."""
    st.session_state[f"{TAB_KEY_PREFIX}{page}"] = label


def _paragraphs(text: str) -> None:
    for paragraph in text.split("\n\n"):
        st.markdown(md_escape(paragraph))
