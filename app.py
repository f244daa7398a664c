"""LLM Training Lab, home page: the four training stages as one pipeline, with links to each page.

streamlit run app.py
"""

import streamlit as st

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import lessons, workshop
from ui.shell import PAGES, begin_page, presenter
from ui.text import md_escape

model_slot = begin_page("Home", "🧪")
cards = lessons()

if presenter():  # the room joins from here too
    from ui.join import join_button

    title, join = st.columns([7, 1], vertical_alignment="center")
    title.title("LLM Training Lab")
    join_button(join)
else:
    st.title("LLM Training Lab")
st.markdown(
    "How a large language model is trained, one stage at a time, **run live on a real (small) model** "
    "in your browser: pre-training, supervised fine-tuning, RLHF and DPO."
)

st.graphviz_chart(
    """
    digraph pipeline {
      rankdir=LR; bgcolor="transparent";
      node [shape=box, style="rounded,filled", fillcolor="#dbe7f3", color="#4c78a8", fontname="Helvetica"];
      edge [color="#4c78a8", fontcolor="#4c78a8", fontname="Helvetica"];  // readable on light and dark themes
      data [label="text corpus\\n(the 'internet')", shape=cylinder, fillcolor="#eeeeee", color="#9aa5b1"];
      pre [label="1 · Pre-training\\npredict the next token"];
      sft [label="2 · SFT\\nimitate good answers"];
      rlhf [label="3 · RLHF\\nreward model + RL with KL penalty"];
      dpo [label="4 · DPO\\npreferences, no reward model"];
      data -> pre -> sft;
      sft -> rlhf [label="preferences"];
      sft -> dpo [label="preferences"];
    }
    """,
    width="stretch",
)

columns = st.columns(len(cards))
for column, lesson, (path, label, icon) in zip(columns, cards.values(), PAGES[1:], strict=True):
    with column:
        st.subheader(label)
        first_sentence = lesson.summary.split(". ")[0].rstrip(".") + "."
        st.markdown(md_escape(first_sentence))
        st.page_link(path, label="Open the live demo", icon=icon, help=lesson.title)  # the heading names it

st.divider()
# Drawn last: the model picker needs torch and transformers (seconds on a fresh server), the page above does not.
from ui.frame import load_frame, shielded

loaded = None  # stays None if the model box fails (it then shows its own message)
with shielded("the model box"):
    loaded = load_frame(model_slot)
    st.caption(
        f"Every demo runs on the model chosen in the sidebar (now {md_escape(loaded.name)}, "
        f"{loaded.n_params / 1e6:.2f} M parameters). The default, tiny-base, is this project's own GPT-2, "
        "pre-trained from scratch on a generated corpus, so everything works offline."
    )
if loaded is not None:
    with shielded("the lineage"):
        from ui.demos import lineage

        lineage.draw(loaded.device)

intro, routes = workshop()
with st.expander("A workshop route: 60 or 90 minutes through the app, with a question for the room at each step"):
    st.markdown(intro)
    for column, route in zip(st.columns(len(routes)), routes, strict=True):
        column.subheader(route.title)
        column.markdown(route.text)  # the project's own lesson text (lessons/workshop/routes.md), not user input
