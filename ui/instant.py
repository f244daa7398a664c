"""Demos computed in the browser: the chart follows the slider while it is dragged, with no server round trip.

A Streamlit rerun costs 90-120 ms at best (a minimal app's slider and plotly chart, measured in Chromium on this
machine) and 180-300 ms on these pages; a pure-arithmetic demo needs none of it. Its data (the next-token logits,
the KL sweep's scored candidates, the DPO loss's margins) goes to the browser once per rerun, in a custom component
(`st.components.v2`: inline JS and CSS, no build step, no CDN, works offline), and the browser recomputes and
redraws on every input event. Its formulas (ui/instant/math.js) are the llmlab ones, checked against them by the
browser tests; its charts (ui/instant/charts.js) are small SVG ones in the house style (a redraw takes a few
milliseconds; plotly.js, 4.7 MB, is not loaded for them). The controls are the settings form's fields
(ui/settings.py): at the end of a drag their values come back to the form, so the URL, presenter mode, "Reset
this page" and the panels drawn by Python (the sampled text, the step-by-step buttons) follow.

    instant_demo("pt_next_token", "next_token", form, ["temperature", "top_k", "top_p", "shown"], {"logits": ...})
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from ui.settings import SettingsForm
from ui.shell import presenter

ASSETS = Path(__file__).resolve().parent / "instant"
JS_FILES = ("math.js", "charts.js", "demos.js")  # one module: the formulas, the charts, the component


def component_js() -> str:
    return "\n".join((ASSETS / name).read_text() for name in JS_FILES)


_component = st.components.v2.component("llmlab_instant", js=component_js(), css=(ASSETS / "instant.css").read_text())


def instant_demo(key: str, kind: str, form: SettingsForm, names: Sequence[str], payload: Mapping[str, Any]) -> None:
    """Draw a browser-computed demo of `kind` (a renderer in ui/instant/demos.js) with the form's settings `names`
    as its controls and `payload` as its numbers. `key` (starting with the page's prefix) names its state."""

    def returned() -> None:  # the end of a drag: the browser's values become the form's
        try:
            values = json.loads((st.session_state.get(key) or {}).get("value") or "{}")
        except (TypeError, ValueError):
            return
        for name in names:
            if name in values:
                form.set(name, values[name])

    data = {"kind": kind, "controls": [form.control(n) for n in names], "presenter": presenter(), **payload}
    _component(key=key, data=data, on_value_change=returned)
