"""The one card renderer: a lesson from lessons/ laid out around its page's live demo.

Reading order follows the card: title and intuition, the problem, then the demo (left, filled in by the page
after the card is drawn) beside the "Think it through" Q&A (right), then how it works, the code example, the
misconception, where you see it, the summary and the resources. Card text is escaped, so it shows exactly as
written.
"""

from __future__ import annotations

from contextlib import nullcontext

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from llmlab.lessons import Lesson, load_lessons
from ui.shell import TAB_KEY_PREFIX, presenter
from ui.text import md_escape


@st.cache_resource
def lessons() -> dict[str, Lesson]:
    """Parsed once per process; Lesson objects are frozen, so sharing them is safe."""
    return load_lessons()


def lesson_layout(lesson_id: str) -> DeltaGenerator:
    """Draw the whole card of one lesson around an empty "Live demo" area, and return that area: the page fills
    it afterwards (`with area: demo_tabs(...)`), so the card can be read while the demo loads. Each question
    shows its "Try it" hint (lessons/try-it/), with a button that opens the demo tab it names."""
    lesson = lessons()[lesson_id]
    st.title(lesson.title)
    st.caption(" · ".join(lesson.tags))
    st.info(md_escape(lesson.intuition), icon="💡")
    with st.expander("What problem it solves", expanded=not presenter()):
        _paragraphs(lesson.problem)

    demo_col, qa_col = st.columns([3, 2], gap="large")
    with demo_col:
        st.subheader("Live demo")
        area = st.container()
    with qa_col:
        render_questions(lesson)

    st.divider()
    # On a projector the card's long text folds away; the demo and the questions stay in view.
    with (
        st.expander("The whole card: how it works, code, misconception, summary, resources")
        if presenter()
        else nullcontext()
    ):
        _card_body(lesson)
    return area


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
    st.subheader("Think it through")
    for number, qa in enumerate(lesson.qas, start=1):
        with st.expander(f"Q{number}. {md_escape(qa.question)}"):
            _paragraphs(qa.answer)
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
