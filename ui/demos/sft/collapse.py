"""Model collapse: tiny-sft fine-tuned on its own answers, generation after generation, beside the same loop with
a share of real pairs in every generation's data; per generation, the variety of what it writes (distinct
n-grams), the entropy of its next-token distribution and its share of right facts (llmlab.collapse)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import collapse, plots
from llmlab.collapse import MIXED, SELF_ONLY, CollapseConfig, Generation
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, intro, show_code
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import SettingsForm, option
from ui.shell import presenter

REDRAW = FRAGMENT_UNLESS_RUNNING
TEMPERATURES = (0.3, 0.5, 0.7, 1.0, 1.2)
# What the defaults and the other temperature did on tiny-sft (llmlab.collapse's docstring; tests/test_collapse.py).
MEASURED = (
    "**Measured here (seeds 0, 1, 2).** At the default temperature **0.5** (synthetic data is usually sampled "
    "greedily-ish from its teacher) the answers narrow: in 3 generations on its own answers distinct-2 fell from "
    "0.17 to 0.11–0.13 and the entropy from 0.35 to 0.28–0.29 nats; with half real pairs, to 0.14–0.15 and "
    "0.31–0.34; its stories went from 15–16 of the corpus's 19 places, objects and activities to 3–5 (8–11 mixed), "
    "and Anna, already its favourite name (about 20–25% of the names in its stories), became 45–73% of them "
    "(16–56% mixed). The facts stayed right (100%): sharpening keeps the likeliest answer, and this model's likeliest "
    "answers are right. At temperature **1.0** they do not narrow on this model, they drift: distinct-2 and the "
    "entropy *rise* (0.35 → 0.41–0.48 nats), and its own mistakes are trained in: right facts fell from 94–97% to "
    "76–81% (84–89% with half real pairs)."
)
# The prompts whose answers the table follows from generation to generation (answered by every generation).
FOLLOWED_KINDS = ("story", "code", "capital")


@dataclass(frozen=True)
class CollapseSettings:
    temperature: float = option("Sampling temperature", choices=TEMPERATURES, core=(CollapseConfig, "temperature"))
    generations: int = option("Generations", lo=1, hi=8, step=1, core=(CollapseConfig, "generations"))
    real: float = option(
        "Real data in the mixed run", lo=0.1, hi=0.9, step=0.1, core=(CollapseConfig, "real_fraction"),
    )  # fmt: skip
    steps: int = option("Steps per generation", lo=10, hi=120, step=10, advanced=True,
                        core=(CollapseConfig, "max_steps"))  # fmt: skip
    seed: int = option("Seed", lo=0, hi=9, step=1, advanced=True, core=(CollapseConfig, "seed"))

    def config(self) -> CollapseConfig:
        return CollapseConfig(
            temperature=float(self.temperature),
            generations=int(self.generations),
            real_fraction=round(float(self.real), 2),
            max_steps=int(self.steps),
            seed=int(self.seed),
        )


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    intro(
        f"**Models teaching models.** {start.name} answers {CollapseConfig.prompts} instructions "
        f"({CollapseConfig.answers_per_prompt} sampled answers each); a copy is fine-tuned with trl's SFTTrainer on "
        "those answers, and the fine-tuned model writes the next generation's data. The *mixed* run does the same "
        "but replaces a share of every generation's pairs with real pairs (the project's instruction data, written "
        "from the corpus's facts, never sampled from a model). Each generation is measured the same way: how varied "
        "its answers are (distinct-2: distinct word pairs over all word pairs of its answers), how spread its "
        "next-token distribution is (entropy along fixed real answers) and how many of its fact answers are right."
        "\n\n" + MEASURED
    )
    form = SettingsForm(CollapseSettings, "sft_mc_")
    c1, c2, c3 = st.columns(3)
    form.widget("temperature", c1)
    form.widget("generations", c2)
    form.widget("real", c3)
    if not presenter():  # (in presenter mode both are hidden: no empty expander)
        with st.expander("More settings"):
            form.widget("steps")
            form.widget("seed")
    cfg = form.done().config()
    st.caption(f"Starts from **{start.name}** whatever the sidebar says: self-training needs a model that answers.")
    run_panel(
        "sft_collapse",
        lambda: Job("sft_collapse", collapse.collapse_work(start, cfg)),
        draw_collapse,
        start_label="Run the generations",
        idle_message=f"Start runs {cfg.generations} generations of self-training twice (self only, then mixed with "
        f"{cfg.real_fraction:.0%} real pairs), from the same start, with the same prompts, steps and seed.",
    )
    show_code(collapse.training_pairs, collapse.distinct_n)


def by_run(generations: list[Generation]) -> dict[str, list[Generation]]:
    runs: dict[str, list[Generation]] = {}
    for g in generations:
        runs.setdefault(g.run, []).append(g)
    return runs


def generation_chart(runs: dict[str, list[Generation]], attr: str, title: str, y_title: str, percent: bool = False):
    fig = plots.metric_lines(
        {name: ([g.generation for g in gens], [getattr(g, attr) for g in gens]) for name, gens in runs.items()},
        title,
        "generation (0 = start)",
        y_title,
        percent=percent,
    )
    fig.update_xaxes(dtick=1)
    return plots.legend_below(fig).update_layout(legend_y=-0.3)  # under the axis title


def draw_collapse(job: Job) -> None:
    generations = job.notes_of(Generation)
    if job.running:
        st.caption(progress(job, generations))
    if not generations:
        return
    runs = by_run(generations)
    c1, c2 = st.columns(2)  # three in a row cut their titles in the demo column
    chart(
        generation_chart(runs, "distinct_2", "Variety: distinct word pairs", "distinct-2 (share)"),
        key="sft_collapse_distinct",
        where=c1,
    )
    chart(
        generation_chart(runs, "entropy", "Next-token entropy, fixed answers", "nats/token"),
        key="sft_collapse_entropy",
        where=c2,
    )
    chart(
        generation_chart(runs, "correct", "Right facts", "sampled facts right (%)", percent=True),
        key="sft_collapse_correct",
        where=st.columns(2)[0],
    )
    st.dataframe(pd.DataFrame(collapse.table_rows(generations)), hide_index=True, key="sft_collapse_table")
    st.markdown("**What each generation wrote** (the first sampled answer to a few of the prompts):")
    st.dataframe(pd.DataFrame(answer_rows(runs)), hide_index=True, key="sft_collapse_answers")
    if not job.running and SELF_ONLY in runs and MIXED in runs and len(runs[MIXED]) == len(runs[SELF_ONLY]) > 1:
        first, self_last, mixed_last = runs[SELF_ONLY][0], runs[SELF_ONLY][-1], runs[MIXED][-1]
        st.markdown(
            f"After {self_last.generation} generations: distinct-2 {first.distinct_2:.3f} → "
            f"**{self_last.distinct_2:.3f}** on its own answers, **{mixed_last.distinct_2:.3f}** mixed; entropy "
            f"{first.entropy:.3f} → **{self_last.entropy:.3f}** / **{mixed_last.entropy:.3f}** nats; right facts "
            f"{first.correct:.0%} → **{self_last.correct:.0%}** / **{mixed_last.correct:.0%}**; the stories use "
            f"{first.story_choices} of the corpus's {collapse.STORY_CHOICES} places, objects and activities at "
            f"generation 0, **{self_last.story_choices}** after self-training and **{mixed_last.story_choices}** mixed."
        )


def progress(job: Job, generations: list[Generation]) -> str:
    """What the job is doing now: sampling, or training which generation of which run (its last logged step)."""
    if not generations:
        return "Sampling and measuring the start model's answers (generation 0)…"
    steps = [m for m in job.snapshot() if "loss" in m]
    if not steps:
        return "Training generation 1…"
    last = steps[-1]
    run = (SELF_ONLY, MIXED)[int(last["run"])]
    return f"{run}: training generation {int(last['generation'])}, step {int(last['step'])}, loss {last['loss']:.3f}"


def answer_rows(runs: dict[str, list[Generation]]) -> list[dict]:
    """One row per (prompt, generation): the first answer each run wrote to it."""
    first = next(iter(runs.values()))[0]
    prompts = []
    for kind in FOLLOWED_KINDS:
        prompt = next((s.pair.prompt for s in first.samples if s.pair.kind == kind), None)
        if prompt is not None:
            prompts.append(prompt)
    rows = []
    for prompt in prompts:
        for n in range(max(len(gens) for gens in runs.values())):
            row = {"prompt": prompt, "generation": n}
            for name, gens in runs.items():
                answers = gens[n].examples([prompt])[prompt] if n < len(gens) else []
                row[name] = answers[0] if answers else ""
            rows.append(row)
    return rows
