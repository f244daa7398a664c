"""Page settings that round-trip through the URL, TensorFlow-Playground style: a link reproduces a view.

Each page declares its settings once as `Param`s (widget key = URL name, default, bounds). Before its widgets,
the page calls `restore(params)`: on the session's first run of that page, valid URL values go into
`st.session_state` (numbers clamped to their bounds, unknown choices ignored, each with a small notice), and
every other setting gets its default. Widgets then take their value from their key (no `value=` argument),
and `publish(params)` after them writes the current values back to `st.query_params`. A multiselect's Param has
a tuple default and its choices; in the URL its values are comma-separated (`?dpo_sweep_betas=0.01,0.1,1`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from ui.text import md_escape


def _shown(raw: str) -> str:
    """URL text quoted in a notice: cut short and Markdown-escaped (a link's text is never markup)."""
    return md_escape(raw[:40])


@dataclass(frozen=True)
class Param:
    key: str  # the widget key and the URL parameter name
    default: Any  # its type (bool, int, float, str) is the parameter's type
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Any, ...] | None = None

    def parse(self, raw: str) -> tuple[Any, str | None]:
        """(value, notice): the URL's text as a valid value, or the default with a notice saying why."""
        if isinstance(self.default, tuple):
            return self._parse_selection(raw)
        kind = type(self.default)
        try:
            if kind is bool:
                if raw.lower() not in ("1", "0", "true", "false"):
                    raise ValueError
                value: Any = raw.lower() in ("1", "true")
            elif kind is int:
                value = int(float(raw))
            elif kind is float:
                value = float(raw)
                if not math.isfinite(value):
                    raise ValueError
            else:
                value = raw
        except (ValueError, OverflowError):
            return self.default, f"'{self.key}={_shown(raw)}' is not a valid value: using {self.default}."
        if self.choices is not None and value not in self.choices:
            return self.default, f"'{self.key}={_shown(raw)}' is not one of the options: using {self.default}."
        if self.lo is not None and value < self.lo:
            return kind(self.lo), f"'{self.key}' was below its range: set to {kind(self.lo)}."
        if self.hi is not None and value > self.hi:
            return kind(self.hi), f"'{self.key}' was above its range: set to {kind(self.hi)}."
        return value, None

    def _parse_selection(self, raw: str) -> tuple[tuple[Any, ...], str | None]:
        """A multiselect's comma-separated choices, in the options' order; unknown ones are dropped."""
        by_text = {self.format(choice): choice for choice in self.choices or ()}
        numeric = all(isinstance(choice, int | float) and not isinstance(choice, bool) for choice in by_text.values())
        picked, unknown = [], []
        for text in filter(None, (part.strip() for part in raw.split(","))):
            if numeric and text not in by_text:
                try:  # "0.10" and "1e-1" name the option 0.1 too
                    text = self.format(float(text))
                except (ValueError, OverflowError):
                    pass
            (picked if text in by_text else unknown).append(text)
        value = tuple(choice for text, choice in by_text.items() if text in picked)
        if unknown:
            return (
                value,
                f"'{self.key}': ignored {_shown(', '.join(t[:20] for t in unknown[:3]))} (not one of the options).",
            )
        return value, None

    def format(self, value: Any) -> str:
        if isinstance(value, tuple | list):
            return ",".join(self.format(item) for item in value)
        if isinstance(value, bool):
            return "1" if value else "0"
        return f"{value:g}" if isinstance(value, float) else str(value)


def restore(params: Sequence[Param], page: str) -> list[str]:
    """Fill st.session_state from the URL once per session and page; returns notices about bad values."""
    done_key = f"_url_restored_{page}"
    notices: list[str] = []
    if not st.session_state.get(done_key):
        for param in params:
            raw = st.query_params.get(param.key)
            if raw is not None:
                value, notice = param.parse(raw)
                st.session_state[param.key] = value
                if notice:
                    notices.append(notice)
        st.session_state[done_key] = True
    for param in params:
        # Re-assigning keeps the value when the user visits another page (Streamlit drops the state of
        # widgets that a run did not draw, unless the value was set through the Session State API).
        value = st.session_state.get(param.key, param.default)
        st.session_state[param.key] = list(value) if isinstance(value, tuple) else value  # a multiselect's: a list
    for notice in notices:
        st.toast(notice, icon="🔗")
    return notices


def publish(params: Sequence[Param]) -> None:
    """Write the current settings into the URL, so copying the address shares this exact view."""
    for param in params:
        value = st.session_state.get(param.key, param.default)
        text = param.format(value)
        if st.query_params.get(param.key) != text:
            st.query_params[param.key] = text


def reset(params: Sequence[Param]) -> None:
    """Back to the defaults (the "reset this page" button)."""
    for param in params:
        st.session_state[param.key] = list(param.default) if isinstance(param.default, tuple) else param.default
        if param.key in st.query_params:
            del st.query_params[param.key]
