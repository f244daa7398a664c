"""Token chips: each token of a text as a small box with its id, optionally coloured (e.g. in the loss or not).

The chips are an HTML snippet we build; every piece of text in it goes through `html_text`, so a prompt
such as "<script>" shows as those characters and is never markup.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from ui.text import html_text

_CHIP = (
    "display:inline-block;margin:2px;padding:2px 6px;border-radius:6px;font-family:monospace;"
    "white-space:pre;border:1px solid rgba(128,128,128,.45);background:{bg};line-height:1.5"
)


def visible(piece: str) -> str:
    """Spaces and controls made visible: " Paris" -> "␣Paris", "\\n" -> "↵"."""
    shown = piece.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in shown)


def token_chips(
    pieces: Sequence[str],
    ids: Sequence[int],
    backgrounds: Sequence[str] | None = None,
    titles: Sequence[str] | None = None,
) -> None:
    """Draw the chips; `backgrounds` are CSS colours per token, `titles` hover texts per token."""
    chips = []
    for n, (piece, token_id) in enumerate(zip(pieces, ids, strict=True)):
        bg = backgrounds[n] if backgrounds else "rgba(76,120,168,.15)"
        title = f' title="{html_text(titles[n])}"' if titles else ""
        chips.append(
            f'<span style="{_CHIP.format(bg=bg)}"{title}>{html_text(visible(piece))}'
            f'<sub style="opacity:.6;margin-left:3px">{int(token_id)}</sub></span>'
        )
    st.html(f'<div class="token-chips" style="line-height:2">{"".join(chips)}</div>')
