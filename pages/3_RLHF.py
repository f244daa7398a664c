"""RLHF: the card and its live demo."""

import streamlit as st

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import render_lesson_page
from ui.frame import page_frame

loaded = page_frame("RLHF", "⚖️")


def demo() -> None:
    st.info("The live demo for this stage is being built.", icon="🚧")


render_lesson_page("rlhf", demo)
