"""The cards' runnable code (issue 17) and the Home page's lineage view.

- Each runnable card snippet (lessons/code/<concept>.py) at its own defaults, run as the page's "Run it here" runs
  it: `cardcode.run_snippet(concept)` (a subprocess: start-up, imports and model loading included, the snippet's
  own thread cap). Target ≤ 20 s each, and it prints what its card promises (as tests/test_card_code.py checks):
  pre-training the next token " Paris", SFT a falling loss, RLHF a before -> after reward-model score, DPO reward
  margins that grow from 0.
- The lineage view (Home): `lineage.compare` of tiny-base, tiny-sft, tiny-rlhf and tiny-dpo on one question, the
  models loaded before timing. No target was stated; one rerun of the page pays it.

    python -m bench.bench_card_code    # ~1-2 minutes on 2 cores
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import math  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402

from bench.report import Row, print_table  # noqa: E402
from llmlab import cardcode, lineage  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402

FLOAT = r"(-?\d+\.\d+)"
QUESTION = "What is the capital of Spain?"
MARK = {True: "✓", False: "✗", None: "?"}  # a right answer, a wrong one, a question with no known fact


def _pretraining(output: str) -> tuple[bool, str]:
    last = output.splitlines()[-1] if output else ""
    return last == " Paris", f"last line {last!r}"


def _sft(output: str) -> tuple[bool, str]:
    found = re.search(rf"SFT loss: first step {FLOAT} -> last step {FLOAT} \((\d+) steps\)", output)
    if not found:
        return False, "no 'SFT loss: first step … -> last step …' line"
    first, last, steps = found.groups()
    return float(last) < float(first), f"loss {first} -> {last} ({steps} steps)"


def _rlhf(output: str) -> tuple[bool, str]:
    found = re.search(rf"before {FLOAT} -> after {FLOAT}", output)
    if not found:
        return False, "no 'before … -> after …' line"
    before, after = (float(x) for x in found.groups())
    sane = all(math.isfinite(x) and abs(x) < 50 for x in (before, after))
    return sane, f"RM score before {before:.3f} -> after {after:.3f}"


def _dpo(output: str) -> tuple[bool, str]:
    found = re.search(rf"DPO rewards/margins: first step {FLOAT} -> last step {FLOAT} \((\d+) steps\)", output)
    if not found:
        return False, "no 'DPO rewards/margins: first step … -> last step …' line"
    first, last, steps = found.groups()
    return float(first) == 0.0 and float(last) > float(first), f"margins {first} -> {last} ({steps} steps)"


CHECKS: dict[str, tuple[str, Callable[[str], tuple[bool, str]]]] = {
    "pretraining": ('prints " Paris"', _pretraining),
    "sft": ("prints a falling SFT loss", _sft),
    "rlhf": ("prints RM score before -> after", _rlhf),
    "dpo": ("prints margins 0 -> growing", _dpo),
}


def snippet_rows(concept: str) -> list[Row]:
    promise, check = CHECKS[concept]
    result = cardcode.run_snippet(concept)
    if result.ok:
        printed, what = check(result.output)
    else:
        printed = False
        what = cardcode.failure_message(result, concept) or "failed"
        what = f"{what} | {result.tail(3)}".replace("\n", " / ")[:300]
    return [
        Row(
            f"card snippet {concept}: default run (`{cardcode.terminal_command(concept)}`, through run_snippet)",
            "<= 20 s",
            f"{result.seconds:.1f} s",
            ok=result.ok and result.seconds <= 20,
        ),
        Row(f"  {concept}: prints what its card promises", promise, what, ok=printed),
    ]


def lineage_rows() -> list[Row]:
    models = {name: load_model(name, "cpu") for name in lineage.LINEAGE}
    start = time.perf_counter()
    view = lineage.compare(models, QUESTION)
    first_ms = (time.perf_counter() - start) * 1000
    times = []
    for _ in range(5):
        start = time.perf_counter()
        lineage.compare(models, QUESTION)
        times.append((time.perf_counter() - start) * 1000)
    right = ", ".join(f"{n} {MARK[view.correct[n]]}" for n in view.names)
    return [
        Row(
            f"Home lineage view: lineage.compare of {len(models)} models on {QUESTION!r} (models loaded), first call",
            "—",
            f"{first_ms:.0f} ms",
            ratio=f"right answer: {right}",
        ),
        Row("  the same, again (p50 of 5)", "—", f"{statistics.median(times):.0f} ms"),
    ]


def run() -> list[Row]:
    torch.set_num_threads(2)
    rows: list[Row] = []
    for concept in CHECKS:
        rows += snippet_rows(concept)
    rows += lineage_rows()
    return rows


def main() -> None:
    print_table(run(), "Runnable card code and the lineage view")


if __name__ == "__main__":
    main()
