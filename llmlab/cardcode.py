"""The concept cards' code examples, made to run here: each card's snippet beside its runnable version, and a
way to run that version in a subprocess with its output streamed.

A card's "Code example" (`Lesson.code_example`) is written for the hub and for older library versions; none of
the four runs as written on the pinned stack. `lessons/code/<concept>.py` is the runnable version: the card's
text, same names, same order, same comments, changed only where the pinned libraries, the offline machine or
the tiny bundled models require it. Run one from the repo root: `python lessons/code/sft.py`.

Each change carries its reason in the runnable file itself, as a full-line comment right above it:

    # why: API renamed in trl 0.12: tokenizer= became processing_class=
    model=model, processing_class=tok, train_dataset=ds,

A `# why:` line is not code: it is left out of the code the diff shows, and its reason belongs to the change at
that place (the next code line, or the card lines removed there). One reason may cover a run of changed lines;
every change needs at least one (`unexplained(...)`, enforced by tests/test_card_code.py), and a reason above
an unchanged line is an error too. The snippets read LLMLAB_SNIPPET_STEPS (the tests shorten runs with it).

    rows = diff_rows(lesson.code_example, runnable_source("sft"))   # DiffRow(card, runnable, kind, reason, hunk)
    result = run_snippet("pretraining", on_output=print)           # RunResult(output, returncode, ...)

Never imports streamlit; ui/demos/code_example.py draws the diff and runs the snippet in a background Job.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmlab.lessons import LESSONS_DIR
from llmlab.threadenv import THREAD_ENV

REPO_ROOT = LESSONS_DIR.parent
CODE_DIR = LESSONS_DIR / "code"
WHY = "# why:"
STEPS_ENV = "LLMLAB_SNIPPET_STEPS"  # optimizer steps a training snippet runs (its own default when unset)
SNIPPET_THREADS = os.environ.get("LLMLAB_SNIPPET_THREADS", "1")  # torch threads of a snippet (shared 2-core server)
DEFAULT_TIMEOUT_S = 60.0
MAX_OUTPUT_LINES = 2000  # a runaway snippet keeps only its last lines
SIMILAR = 0.45  # two lines of a change this similar (difflib ratio) are one line changed, not removed + added


# -- the runnable files and their reasons ----------------------------------------------------------------------


def runnable_path(concept: str) -> Path:
    """`lessons/code/<concept>.py`; ValueError for a concept with no runnable file."""
    path = CODE_DIR / f"{concept}.py"
    if not concept.isidentifier() or not path.is_file():
        raise ValueError(f"no runnable code example for {concept!r} (looked for {path})")
    return path


def runnable_source(concept: str) -> str:
    """The runnable file exactly as it runs, `# why:` lines included (diff_rows reads them)."""
    return runnable_path(concept).read_text(encoding="utf-8")


def terminal_command(concept: str) -> str:
    """How to run it from a terminal, at the repo root."""
    return f"python {runnable_path(concept).relative_to(REPO_ROOT).as_posix()}"


def split_reasons(runnable: str) -> tuple[list[str], list[tuple[int, str]]]:
    """(the code lines, without `# why:` lines; [(position, reason)]): a reason at position p sits right above
    code line p (p == len(lines): at the end)."""
    lines: list[str] = []
    reasons: list[tuple[int, str]] = []
    for line in runnable.splitlines():
        if line.strip().startswith(WHY):
            reasons.append((len(lines), line.strip()[len(WHY) :].strip()))
        else:
            lines.append(line.rstrip())
    return lines, reasons


def code_only(runnable: str) -> str:
    """The runnable code without its `# why:` lines (what the diff's right-hand side shows)."""
    return "\n".join(split_reasons(runnable)[0])


# -- the side-by-side diff -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffRow:
    """One row of the side-by-side diff. `card`/`runnable` is None where that side has no line."""

    card: str | None
    runnable: str | None
    kind: str  # "same", "changed", "added" or "removed"
    reason: str = ""  # the reason(s) stored for the change starting at this row ("" if none starts here)
    hunk: int | None = None  # which change the row belongs to, 0, 1, ... (None for "same")


_HEAD = re.compile(r"\s*([\w.]+\s*(?:=|\())")


def _similarity(a: str, b: str) -> float:
    """difflib's ratio of two lines; lines that assign the same name or call the same function count as similar."""
    ratio = difflib.SequenceMatcher(None, a.strip(), b.strip()).ratio()
    head_a, head_b = _HEAD.match(a), _HEAD.match(b)
    if head_a and head_b and head_a[1].replace(" ", "") == head_b[1].replace(" ", ""):
        return max(ratio, SIMILAR)
    return ratio


def _pair_lines(old: Sequence[str], new: Sequence[str]) -> list[tuple[int | None, int | None]]:
    """Align the lines of one changed block in order, pairing similar lines (weighted LCS on difflib's ratio);
    unpaired lines are removed (old) or added (new)."""
    n, m = len(old), len(new)
    sim = [[_similarity(a, b) for b in new] for a in old]
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            paired = best[i + 1][j + 1] + sim[i][j] if sim[i][j] >= SIMILAR else -1.0
            best[i][j] = max(best[i + 1][j], best[i][j + 1], paired)
    pairs: list[tuple[int | None, int | None]] = []
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and sim[i][j] >= SIMILAR and best[i][j] == best[i + 1][j + 1] + sim[i][j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif i < n and (j == m or best[i][j] == best[i + 1][j]):
            pairs.append((i, None))
            i += 1
        else:
            pairs.append((None, j))
            j += 1
    return pairs


def _raw_rows(card: Sequence[str], code: Sequence[str]) -> list[tuple[int | None, int | None, int | None]]:
    """(card index, code index, hunk) per row, in reading order."""
    rows: list[tuple[int | None, int | None, int | None]] = []
    matcher = difflib.SequenceMatcher(None, list(card), list(code), autojunk=False)
    hunk = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend((i1 + k, j1 + k, None) for k in range(i2 - i1))
            continue
        for a, b in _pair_lines(card[i1:i2], code[j1:j2]):
            rows.append((None if a is None else i1 + a, None if b is None else j1 + b, hunk))
        hunk += 1
    return rows


def _reason_rows(rows: Sequence[tuple[int | None, int | None, int | None]], position: int) -> int | None:
    """The row a reason written above code line `position` explains: the first changed, added or removed row at
    that place (a removed card line sits where the next code line is); None if only unchanged lines are there."""
    code_lines_before = 0
    for n, (_, code_index, hunk) in enumerate(rows):
        if hunk is not None and code_lines_before == position:
            return n
        if code_index is not None:
            code_lines_before += 1
            if code_lines_before > position:
                return None
    return None


def diff_rows(card_snippet: str, runnable: str) -> list[DiffRow]:
    """The card's snippet and the runnable file side by side, one row per line (difflib on whole lines; within a
    changed block, similar lines are paired as "changed"). `runnable` is the file's text with its `# why:`
    lines: each reason lands on the row of the change it explains."""
    card = [line.rstrip() for line in card_snippet.splitlines()]
    code, reasons = split_reasons(runnable)
    raw = _raw_rows(card, code)
    notes: dict[int, list[str]] = {}
    for position, reason in reasons:
        row = _reason_rows(raw, position)
        if row is not None:
            notes.setdefault(row, []).append(reason)
    result = []
    for n, (a, b, hunk) in enumerate(raw):
        kind = "same" if hunk is None else "removed" if b is None else "added" if a is None else "changed"
        result.append(
            DiffRow(
                card=None if a is None else card[a],
                runnable=None if b is None else code[b],
                kind=kind,
                reason=" ".join(notes.get(n, [])),
                hunk=hunk,
            )
        )
    return result


def hunk_reasons(rows: Sequence[DiffRow]) -> dict[int, list[str]]:
    """Each change's reasons, in order (an empty list: a change nobody explained)."""
    out: dict[int, list[str]] = {}
    for row in rows:
        if row.hunk is not None:
            out.setdefault(row.hunk, [])
            if row.reason:
                out[row.hunk].append(row.reason)
    return out


def unexplained(card_snippet: str, runnable: str) -> list[str]:
    """What is wrong with the stored reasons, in words (empty: every change has a reason, and every reason
    explains a change)."""
    problems = []
    rows = diff_rows(card_snippet, runnable)
    for hunk, reasons in hunk_reasons(rows).items():
        if not reasons:
            lines = [f"{r.card or ''!r} -> {r.runnable or ''!r}" for r in rows if r.hunk == hunk]
            problems.append(f"change {hunk} has no '# why:' reason: {'; '.join(lines)}")
    code, reasons = split_reasons(runnable)
    raw = _raw_rows([line.rstrip() for line in card_snippet.splitlines()], code)
    for position, reason in reasons:
        if _reason_rows(raw, position) is None:
            where = code[position] if position < len(code) else "the end"
            problems.append(f"the reason {reason!r} sits above an unchanged line: {where!r}")
    return problems


# -- running a snippet ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    output: str  # stdout and stderr, interleaved as printed
    returncode: int | None  # None: it was killed (timed out or stopped)
    timed_out: bool
    seconds: float
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.stopped

    def tail(self, n: int = 20) -> str:
        return "\n".join(self.output.splitlines()[-n:])


def snippet_env(steps: int | None = None, tmpdir: str | None = None) -> dict[str, str]:
    """The environment a snippet runs in: offline, capped torch threads, the repo importable, no progress bars
    or library deprecation warnings (they are the libraries' own, not the snippet's), temporary files in
    `tmpdir`."""
    env = dict(os.environ)
    for name, value in THREAD_ENV.items():
        env.setdefault(name, value)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "OMP_NUM_THREADS": SNIPPET_THREADS,
            "MKL_NUM_THREADS": SNIPPET_THREADS,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "PYTHONUNBUFFERED": "1",
            "TQDM_DISABLE": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning",
        }
    )
    if steps is not None:
        env[STEPS_ENV] = str(int(steps))
    if tmpdir is not None:
        env["TMPDIR"] = tmpdir
    return env


def run_snippet(
    concept: str | Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_output: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    steps: int | None = None,
) -> RunResult:
    """Run `lessons/code/<concept>.py` (or any script, given as a Path) with `sys.executable` in a subprocess, cwd
    the repo root; each output line goes to `on_output` as it is printed. The process is killed when it runs past
    `timeout_s` or when `should_stop()` turns true (checked ~10 times a second). `steps` sets LLMLAB_SNIPPET_STEPS.
    Never raises for what the snippet does: a failure is a non-zero returncode with its traceback in `output`."""
    path = Path(concept) if isinstance(concept, Path) else runnable_path(concept)
    lines: list[str] = []
    start = time.perf_counter()
    timed_out = stopped = False
    with tempfile.TemporaryDirectory(prefix="llmlab-snippet-") as tmp:
        process = subprocess.Popen(
            [sys.executable, str(path)],
            cwd=REPO_ROOT,
            env=snippet_env(steps, tmp),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,  # its own process group: a kill reaches anything it started
        )
        pending: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(process, pending), daemon=True, name="llmlab-snippet-out")
        reader.start()
        done = False
        while not done:
            try:
                line = pending.get(timeout=0.1)
            except queue.Empty:
                line = ""
            if line is None:
                done = True
            elif line:
                _take(line, lines, on_output)
            if done:
                break
            if time.perf_counter() - start > timeout_s:
                timed_out = True
            elif should_stop is not None and should_stop():
                stopped = True
            if timed_out or stopped:
                _kill(process)
                break
        process.wait()
        reader.join(timeout=5)
        while True:  # what it printed before it ended or was killed
            try:
                line = pending.get_nowait()
            except queue.Empty:
                break
            if line:
                _take(line, lines, on_output)
    killed = timed_out or stopped
    return RunResult(
        output="\n".join(lines),
        returncode=None if killed else process.returncode,
        timed_out=timed_out,
        seconds=time.perf_counter() - start,
        stopped=stopped,
    )


def _read_lines(process: subprocess.Popen, out: queue.Queue) -> None:
    assert process.stdout is not None
    with contextlib.suppress(ValueError, OSError):  # the pipe closed under us: the process was killed
        for line in process.stdout:
            out.put(line.rstrip("\n"))
    out.put(None)


def _take(line: str, lines: list[str], on_output: Callable[[str], None] | None) -> None:
    lines.append(line)
    if len(lines) > MAX_OUTPUT_LINES:
        del lines[: len(lines) - MAX_OUTPUT_LINES]
    if on_output is not None:
        on_output(line)


def _kill(process: subprocess.Popen) -> None:
    """Kill the snippet and its process group (the group it was started in, by its id)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


# -- as a background Job ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputLine:
    """One line the snippet printed (a Job note, in order)."""

    text: str


class SnippetError(RuntimeError):
    """The snippet failed or timed out; the message says so in a sentence (its output is in the job's notes)."""


def failure_message(result: RunResult, concept: str = "") -> str | None:
    """A sentence for a run that did not succeed (None if it did)."""
    name = f"lessons/code/{concept}.py" if concept else "The snippet"
    if result.timed_out:
        return f"{name} ran past its {result.seconds:.0f} s time limit and was stopped; its last lines are below."
    if result.stopped:
        return None
    if result.returncode != 0:
        return f"{name} failed (exit code {result.returncode}); its last lines are below."
    return None


def snippet_work(concept: str, timeout_s: float = DEFAULT_TIMEOUT_S, steps: int | None = None):
    """A `work(job)` for llmlab.jobs.Job: run the snippet, note every output line as an OutputLine, stop it when
    the job is asked to. Returns the RunResult; raises SnippetError (the job fails with its message) when the
    snippet fails or times out."""
    runnable_path(concept)  # an unknown concept fails here, before the job starts

    def work(job) -> RunResult:
        result = run_snippet(
            concept,
            timeout_s=timeout_s,
            on_output=lambda line: job.note(OutputLine(line)),
            should_stop=lambda: job.should_stop,
            steps=steps,
        )
        message = failure_message(result, concept)
        if message:
            raise SnippetError(message)
        return result

    return work
