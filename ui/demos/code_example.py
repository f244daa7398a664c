"""A card's "Code example", run here: the card's snippet beside `lessons/code/<concept>.py` (the version that runs
on the pinned libraries, offline, on the bundled models) as a diff with one reason per change, the command that
runs it from a terminal, and a "Run it here" button that runs it in a subprocess in the background (a Job,
ui/runs.py's run panel) and shows its output as it comes.

    from ui.demos import code_example
    code_example.draw(lesson)          # a Lesson from llmlab.lessons; widget keys are "card_code_<id>_..."

Draw it in the page run, not inside a fragment: the run panel's live view is a `run_every` fragment of its own.
The compute (diff, subprocess, reasons) is llmlab.cardcode; nothing here blocks the page.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import streamlit as st

from llmlab import cardcode
from llmlab.lessons import Lesson
from ui.runs import run_panel
from ui.text import html_text

if TYPE_CHECKING:  # light at import, like ui/runs.py: llmlab.jobs pulls in transformers, the card needs none
    from llmlab.jobs import Job

KEY_PREFIX = "card_code_"
TIMEOUT_S = 120.0  # a busy server (niced job, other runs) can take a few times the ~10-20 s a snippet needs alone
LIVE_LINES = 12  # output lines shown while it runs
FAILED_LINES = 25  # output lines shown under a failure message

_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")  # a changed line is compared word by word, not letter by letter
_KIND_LABEL = {"same": "", "changed": "changed", "added": "added", "removed": "removed"}

_CSS = """
<style>
.cardcode-diff { border-collapse: collapse; width: 100%; table-layout: fixed; font-size: 0.78rem; }
.cardcode-diff th { text-align: left; font-weight: 600; padding: 0.2rem 0.4rem; border-bottom: 1px solid rgba(128,128,128,.4); }
.cardcode-diff td { vertical-align: top; padding: 0 0.4rem; white-space: pre-wrap; word-break: break-word;
  font-family: "Source Code Pro", ui-monospace, monospace; }
.cardcode-diff tr.changed td.card, .cardcode-diff tr.removed td.card { background: rgba(255, 75, 75, .14); }
.cardcode-diff tr.changed td.code, .cardcode-diff tr.added td.code { background: rgba(33, 195, 84, .14); }
.cardcode-diff tr.same td { opacity: 0.8; }
.cardcode-diff del { background: rgba(255, 75, 75, .35); text-decoration: none; }
.cardcode-diff ins { background: rgba(33, 195, 84, .35); text-decoration: none; }
.cardcode-diff tr.why td { font-family: inherit; font-style: italic; padding: 0.1rem 0.4rem 0.35rem 1.4rem;
  background: rgba(128, 128, 128, .08); }
.cardcode-diff .kind { width: 4.5rem; font-family: inherit; opacity: .7; }
</style>
"""


def panel_key(concept: str) -> str:
    return f"{KEY_PREFIX}{concept}"


def draw(lesson: Lesson) -> None:
    """The card's snippet vs the runnable one, the terminal command, and the Run panel."""
    concept = lesson.id
    try:
        runnable = cardcode.runnable_source(concept)
    except ValueError:
        st.caption("This card's code example has no runnable version yet.")
        return
    rows = cardcode.diff_rows(lesson.code_example, runnable)
    changes = len(cardcode.hunk_reasons(rows))
    counted = "1 change, with its reason" if changes == 1 else f"{changes} changes, each with its reason"
    st.markdown(
        "**Run it here.** The card's snippet does not run as written on this app's libraries (trl and transformers "
        "moved on, and this machine has no network), so here is the closest version that does: left the card, right "
        f"what runs; {counted}."
    )
    st.html(_CSS + diff_html(rows))
    st.caption("Run it yourself from a terminal, at the root of this repository:")
    st.code(cardcode.terminal_command(concept), language="bash")
    key = panel_key(concept)
    run_panel(
        key,
        lambda: _make_job(key, concept),
        _draw_output,
        start_label="Run it here",
        idle_message="Press Run it here to run the right-hand version in a separate Python process "
        f"(it takes 10-30 s; it stops after {TIMEOUT_S:.0f} s). Its output appears below as it prints.",
    )


def _make_job(key: str, concept: str) -> Job:
    from llmlab.jobs import Job

    return Job(key, cardcode.snippet_work(concept, timeout_s=TIMEOUT_S))


def diff_html(rows: Sequence[cardcode.DiffRow]) -> str:
    """The side-by-side diff as an HTML table; every piece of text is escaped. Each reason sits under the rows of
    the change it explains (up to the next reason of that change)."""
    out = [
        '<table class="cardcode-diff"><thead><tr><th>On the card</th><th>Runs here (lessons/code)</th>'
        '<th class="kind"></th></tr></thead><tbody>'
    ]
    pending: list[str] = []
    for n, row in enumerate(rows):
        if row.reason:
            pending.append(row.reason)
        card, code = _cells(row)
        out.append(
            f'<tr class="{row.kind}"><td class="card">{card}</td><td class="code">{code}</td>'
            f'<td class="kind">{_KIND_LABEL[row.kind]}</td></tr>'
        )
        following = rows[n + 1] if n + 1 < len(rows) else None
        if pending and (following is None or following.hunk != row.hunk or following.reason):
            for reason in pending:
                out.append(f'<tr class="why"><td colspan="3">why: {html_text(reason)}</td></tr>')
            pending = []
    out.append("</tbody></table>")
    return "".join(out)


def _cells(row: cardcode.DiffRow) -> tuple[str, str]:
    """The two cells' HTML: a changed row marks the words and symbols that differ (<del> on the card, <ins> here)."""
    if row.kind != "changed" or row.card is None or row.runnable is None:
        return html_text(row.card or ""), html_text(row.runnable or "")
    old, new = [], []
    card, code = _TOKEN.findall(row.card), _TOKEN.findall(row.runnable)
    matcher = difflib.SequenceMatcher(None, card, code, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        a, b = html_text("".join(card[i1:i2])), html_text("".join(code[j1:j2]))
        if tag == "equal":
            old.append(a)
            new.append(b)
            continue
        if a:
            old.append(f"<del>{a}</del>")
        if b:
            new.append(f"<ins>{b}</ins>")
    return "".join(old), "".join(new)


def _draw_output(job: Job) -> None:
    """What the snippet printed: the last lines while it runs, all of it when it is done, the last lines and a
    sentence (run_panel's status line) when it failed or timed out."""
    lines = [note.text for note in job.notes_of(cardcode.OutputLine)]
    if job.running:
        st.caption(f"{len(lines)} line{'s' if len(lines) != 1 else ''} of output so far.")
        shown = lines[-LIVE_LINES:] or ["(starting Python and importing torch, transformers and trl…)"]
        st.code("\n".join(shown), language="text", wrap_lines=True)
        return
    if job.status == "failed":
        if lines:
            st.code("\n".join(lines[-FAILED_LINES:]), language="text", wrap_lines=True)
        return
    result = job.result if isinstance(job.result, cardcode.RunResult) else None
    if job.status == "stopped" or (result is not None and result.stopped):
        st.caption("What it printed before it was stopped:")
    elif result is not None:
        st.caption(f"Exit code {result.returncode}, {result.seconds:.1f} s. What it printed:")
    st.code("\n".join(lines) or "(it printed nothing)", language="text", wrap_lines=True)
