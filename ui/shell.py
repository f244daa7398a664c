"""The light part of every page, drawn before any heavy import: page config, navigation, presenter mode.

A page script calls `begin_page()` first, then (for a lesson page) `ui.cards.lesson_layout()`, and only then
its demo (`ui.frame.demo_tabs`), which waits for the server's warm-up (ui/warm.py) to have imported torch,
transformers and trl. Streamlit streams elements as the script makes them, so on a server that has just
started the sidebar, the card and its questions are on screen in about a second, while the live demo fills in
below "Live demo". This module imports only streamlit and the project's light helpers; `ui.frame` later puts
the model picker into the slot `begin_page()` returns.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui import warm
from ui.settings import KEPT, RESTORED, SettingsForm, option

PAGES = (
    ("app.py", "Home: the pipeline", "🏠"),
    ("pages/1_Pretraining.py", "1 · Pre-training", "📚"),
    ("pages/2_SFT.py", "2 · Supervised fine-tuning", "✍️"),
    ("pages/3_RLHF.py", "3 · RLHF", "⚖️"),
    ("pages/4_DPO.py", "4 · DPO", "🎯"),
)


@dataclass(frozen=True)
class ShellSettings:
    presenter: bool = option(
        "Presenter mode",
        False,
        help="Larger text and charts for a projector; advanced controls hidden; also ?presenter=1.",
    )


PRESENTER_KEY = "presenter"  # ShellSettings' one key (no prefix): ?presenter=1
# Each page's widget keys start with its prefix, so "Reset this page" knows what is the page's.
KEY_PREFIXES = {"Pre-training": "pt_", "Supervised fine-tuning": "sft_", "RLHF": "rl_", "DPO": "dpo_"}
TAB_KEY_PREFIX = "tab_"  # the demo tabs' keys (ui.frame.demo_tabs): the open tab, also a URL parameter

_PRESENTER_CSS = """
<style>
  .stMainBlockContainer { font-size: 1.3rem; max-width: 100%; padding-top: 3rem; }
  .stMainBlockContainer p, .stMainBlockContainer li, .stMainBlockContainer label { font-size: 1.3rem !important; }
  .stMainBlockContainer h1 { font-size: 3.4rem; }
  .stMainBlockContainer h2, .stMainBlockContainer h3 { font-size: 2.2rem; }
  .stMainBlockContainer code { font-size: 1.1rem; }
  .join-address { font-size: 2.2rem; font-weight: 600; line-height: 1.2; word-break: break-all; margin: 0.3rem 0; }
  .presenter-head { font-size: 1.45rem; line-height: 1.4; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
</style>
"""


def reset_page(prefix: str) -> None:
    """Stop the page's runs, forget its settings and results, and drop them from the URL."""
    runs = sys.modules.get("ui.runs")  # not imported yet (warm-up still running): this session has no runs
    if runs is not None:
        jobs = runs.session_jobs()
        for key in [k for k in jobs if k.startswith(prefix)]:
            jobs.pop(key).stop()
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]
    kept = st.session_state.get(KEPT, {})
    for key in [k for k in kept if k.startswith(prefix)]:
        del kept[key]
    st.session_state[RESTORED] = {p for p in st.session_state.get(RESTORED, set()) if not p.startswith(prefix)}
    for key in [k for k in st.query_params if k != PRESENTER_KEY and not k.startswith(TAB_KEY_PREFIX)]:
        del st.query_params[key]  # (the open tab stays open, and in the URL)


@functools.cache
def _chart_code() -> tuple[str, ...]:
    """The URLs of the browser code of plotly and graphviz charts (Streamlit loads each lazily, with the first such
    chart: 4.7 MB for plotly)."""
    chunks = Path(st.__file__).parent / "static" / "static" / "js"
    base = "/" + st.get_option("server.baseUrlPath").strip("/")
    return tuple(
        f"{base.rstrip('/')}/static/js/{path.name}"
        for pattern in ("PlotlyChart.*.js", "GraphVizChart.*.js")
        for path in sorted(chunks.glob(pattern))
    )


# Sent with the card, so that the browser fetches and compiles the chart code while the server warms up instead of
# after the first chart arrived (measured: the first chart on a cold server ~0.8 s sooner in Chromium). st.html
# strips <link> tags, hence a component.
_preload = st.components.v2.component(
    "llmlab_preload_chart_code",
    js="""
export default function ({ data }) {
  for (const href of data || []) {
    if (document.head.querySelector(`link[href$="${href}"]`)) continue;
    const link = document.createElement("link");
    link.rel = "modulepreload";
    link.crossOrigin = "";
    link.href = href;
    document.head.appendChild(link);
  }
}
""",
)


def begin_page(title: str, icon: str = "🧪") -> DeltaGenerator:
    """Set up the page and the light part of its sidebar; return the sidebar slot for the model picker. The first
    page run on a server also starts its warm-up (ui/warm.py)."""
    warm.start()
    shell = SettingsForm(ShellSettings, "")  # (reads ?presenter=1: the sidebar starts folded on a projector)
    st.set_page_config(
        page_title=f"{title} · LLM Training Lab", page_icon=icon, layout="wide",
        initial_sidebar_state="collapsed" if presenter() else "auto",
    )  # fmt: skip
    with st.sidebar:
        st.markdown("### LLM Training Lab")
        for path, label, page_icon in PAGES:
            st.page_link(path, label=label, icon=page_icon)
        st.divider()
        model_slot = st.container()
        st.divider()
        shell.widget(PRESENTER_KEY)
        prefix = KEY_PREFIXES.get(title)
        if prefix:
            st.button(
                "Reset this page",
                key="reset_page",
                on_click=reset_page,
                args=(prefix,),
                icon=":material/restart_alt:",
                help="Stop this page's runs and put every setting back to its default.",
            )
    shell.done()
    _preload(data=list(_chart_code()), key="preload_chart_code", height=0)
    if presenter():
        st.html(_PRESENTER_CSS)
    return model_slot


def presenter() -> bool:
    """Whether this session shows the page for a projector (then advanced settings are hidden: ui/settings.py)."""
    value = st.session_state.get(PRESENTER_KEY)
    return bool(value if value is not None else st.session_state.get(KEPT, {}).get(PRESENTER_KEY, False))
