"""Style, not knowledge: SFT on the polished pairs with a few capitals confidently wrong. The wrong facts become
the likely answer for those countries, while held-out countries keep their pre-trained facts in the new format,
as long as the token embeddings stay frozen; beside it, the same run with them trained (llmlab.sft.
wrong_facts_comparison_work)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import plots, sft
from llmlab.instructions import WRONG_FACT_COUNTRIES
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.sft import WrongFactsConfig
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, show_code
from ui.runs import run_panel
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING

# Measured at the defaults (80 steps, lr 2e-3) on tiny-base, seeds 0, 1 and 2 (tests/test_sft.py checks seed 0).
WHY_FROZEN = (
    "**Why the embeddings are frozen by default, measured** (tiny-base, 80 steps, seeds 0–2): the taught wrong "
    "capitals take over either way (5 of 5 countries at every seed; P(wrong capital) 90–91% frozen, 94% trained). "
    "What changes is everything else. Frozen, 53–63% of the held-out countries' answers name the right fact and "
    "43–47% name it *about the country asked*; 43–50% still talk about a country from the training data instead "
    '("The capital of Belgium is Brussels." to a question about another country). Trained, only 17–40% name the '
    "right fact, 0–7% about the country asked, and 87–97% of the answers are about another country. The embeddings "
    "are tied to the output layer, and the held-out countries' names and facts appear in no SFT pair. So the "
    'default keeps the lesson about behaviour; with every weight trained, the "held-out countries keep their '
    'facts" half holds much less on this model. Untick *Side by side* to train one copy only.'
)


@dataclass(frozen=True)
class WrongFactsSettings:
    steps: int = option("Steps", lo=10, hi=300, step=10, core=(WrongFactsConfig, "max_steps"))
    side_by_side: bool = option(
        "Side by side: the same run with the embeddings trained", core=(WrongFactsConfig, "side_by_side")
    )
    freeze: bool = option(
        "Freeze the token embeddings (single run)", advanced=True, core=(WrongFactsConfig, "freeze_embeddings")
    )


def draw(loaded: LoadedModel) -> None:
    form = SettingsForm(WrongFactsSettings, "sft_wrong_")
    c1, c2 = st.columns(2)
    form.widget("steps", c1)
    form.widget("side_by_side", c2)
    s = form.values()
    if not s.side_by_side:
        form.widget("freeze", c2)
    s = form.done()
    cfg = WrongFactsConfig(max_steps=int(s.steps), side_by_side=s.side_by_side, freeze_embeddings=s.freeze)
    run_panel(
        "sft_wrong",
        lambda: Job("sft_wrong_facts", sft.wrong_facts_comparison_work(loaded, cfg)),
        draw_wrong_facts,
        start_label="Train on wrong facts",
        idle_message=f"The polished pairs, except that {', '.join(WRONG_FACT_COUNTRIES)} each get another "
        "country's capital, stated just as confidently as the true ones."
        + (" Two runs: the token embeddings frozen, then trained." if cfg.side_by_side else ""),
    )
    st.markdown(WHY_FROZEN)
    show_code(sft.continuation_probability)


def draw_wrong_facts(job: Job) -> None:
    rows = [m for m in job.snapshot() if "loss" in m]
    results = job.notes_of(sft.WrongFactsResult)
    if rows:
        labels = {n: r.label for n, r in enumerate(results)}
        series: dict[str, tuple[list, list]] = {}
        for m in rows:
            run = int(m.get("run", 0))
            steps, losses = series.setdefault(labels.get(run, f"run {run + 1} (training…)"), ([], []))
            steps.append(m["step"])
            losses.append(m["loss"])
        chart(plots.loss_curves(series, "Training loss (response tokens)"), key="sft_wrong_loss")
    if not results:
        return
    first = results[0]
    bars = {"wrong capital, before SFT": [p.p_wrong for p in first.before]}
    for r in results:
        bars[f"wrong capital, after SFT ({r.label})"] = [p.p_wrong for p in r.after]
    for r in results:
        bars[f"true capital, after SFT ({r.label})"] = [p.p_right for p in r.after]
    chart(
        plots.grouped_bars(
            [p.country for p in first.after],
            bars,
            title="P(answer | 'The capital of X is'): SFT made the wrong fact the likely one",
            x_title="country taught a wrong capital",
            y_title="probability of the answer (%)",
        ),
        key="sft_wrong_bars",
    )
    st.dataframe(
        pd.DataFrame({"measure": sft.FREEZE_MEASURES} | {r.label: list(r.summary().values()) for r in results}),
        hide_index=True,
        key="sft_wrong_summary",
    )
    st.dataframe(pd.DataFrame(first.table()), hide_index=True, key="sft_wrong_table")
    for r in results[1:]:
        st.caption(f"The same countries, {r.label}:")
        st.dataframe(pd.DataFrame(r.table()), hide_index=True, key=f"sft_wrong_table_{int(r.frozen)}")
    frozen = next((r for r in results if r.frozen), None)
    trained = next((r for r in results if not r.frozen), None)
    if frozen is not None:
        st.markdown(
            f"Embeddings frozen: the taught wrong capital is the answer for **{frozen.taken_over} of "
            f"{len(frozen.after)}** countries, and held-out countries (no wrong facts, not in the data) are still "
            f"answered from pre-training: **{frozen.run.after.accuracy:.0%}** right "
            f"({frozen.right_about_asked_rate:.0%} right and about the country asked). SFT copied the *format* "
            "everywhere and the wrong *facts* only where it saw them — and states them just as fluently."
        )
    if trained is not None:
        st.markdown(
            f"Embeddings trained: the wrong capital is the answer for **{trained.taken_over} of "
            f"{len(trained.after)}**, and held-out countries are answered right only "
            f"**{trained.run.after.accuracy:.0%}** of the time ({trained.right_about_asked_rate:.0%} about the "
            f"country asked; {trained.other_country_rate:.0%} of the answers talk about another country)."
        )
