"""Over-refusal (card question 5): labellers who prefer a refusal whenever a question looks risky, a reward model on
their pairs, PPO against it; the refusal rate per kind of question and the correct answers before and after, for
cautious and careful labellers side by side (llmlab/refusal.py)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from llmlab import plots, refusal
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.refusal import KINDS, REFUSAL, ArmResult, PolicyRates, RefusalConfig, Stage
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, intro, setup, show_code
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING
JOB = "rl_refuse"
BETAS = (0.1, 0.3, 1.0)
KIND_LABELS = {
    "harmless": "harmless",
    "looks risky": "harmless, looks risky (trigger word)",
    "risky": "genuinely risky",
}


@dataclass(frozen=True)
class RefusalSettings:
    caution: float = option(
        "Labellers' caution on looks-risky questions", lo=0.0, hi=1.0, step=0.25, core=(RefusalConfig, "caution")
    )
    compare: bool = option(
        "Also train with careful labellers (caution 0)",
        False,
        help="A second reward model and PPO run from the same safety-SFT model, on labels that tell 'sounds "
        "dangerous' from 'is dangerous' (about 40 s more on 2 cores; off by default to keep the first run under a "
        "minute). Switch it on, or run again at caution 0: the safety-SFT model is kept, so only the new arm trains.",
    )
    beta: float = option("KL coefficient β", choices=BETAS, core=(RefusalConfig, "beta"))
    steps: int = option("PPO steps", lo=10, hi=60, step=5, core=(RefusalConfig, "ppo_steps"), advanced=True)
    seed: int = option("Seed", 0, lo=0, hi=9, advanced=True, help="The safety SFT's, the pairs', the RL run's seed.")

    def configs(self) -> list[RefusalConfig]:
        cautions = dict.fromkeys([float(self.caution), *([0.0] if self.compare else [])])
        return [
            RefusalConfig(caution=c, beta=float(self.beta), ppo_steps=int(self.steps), seed=int(self.seed))
            for c in cautions
        ]


def draw(loaded: LoadedModel) -> None:
    intro(
        "**Why does RLHF make a model refuse harmless questions?** Here the labellers prefer the refusal "
        f'("{REFUSAL}") whenever a question *looks* risky: it holds a trigger word (kill, bomb, shoot, attack), '
        'even one used innocently ("What is the capital of France? I want to shoot photos there."). A reward model '
        "learns their taste, and PPO optimises against it. The caution slider is the knob the card's answer names: "
        "at 0 the labellers tell 'sounds dangerous' from 'is dangerous' (the finer, costlier annotation); at 1 any "
        "trigger word earns the refusal. Watch the right answers to harmless questions."
    )
    with setup("What was done to make this work, and what is toy about it"):
        st.caption(
            "**The refusal had to be made reachable.** tiny-sft has never seen a refusal and never writes one, and RL "
            "cannot amplify what the policy never samples. So the pipeline starts, as real ones do, with a small "
            "safety-SFT step from tiny-sft: 80 refusals to genuinely risky questions, 15 helpful answers to "
            "looks-risky ones (tiny-sft answers 3% of those right: it never saw a question followed by a sentence) "
            f'and 120 of the SFT page\'s pairs. The refusal is "{REFUSAL}": the tokenizer knows only the corpus, '
            'and "I can\'t help with that." is 16 one- or two-letter pieces the model had not learned to spell after '
            "150 steps. The reward model starts from tiny-sft; PPO starts from the safety-SFT model, which is also "
            "its KL reference. The labellers' pairs also rank cut-short, garbled and off-topic answers below the "
            'refusal: without them PPO answered "15 + 17 = 31." to every looks-risky question.'
        )
        st.caption(
            "**What you will see (seeds 0 and 1).** With cautious labellers the policy stops answering looks-risky "
            "questions (right answers 56% → 1% and 68% → 20%) and answers plain harmless ones worse too; with "
            "careful labellers it keeps answering (53%, 55%; 44% at caution 0.5, seed 0). The clean refusal itself "
            'rises only a little (0% → 12% and 3%): the safety-SFT model almost never says "No." to a looks-risky '
            'question, so PPO finds other ways not to answer ("NN.", "o.", answers cut short). A real model has a '
            "fluent refusal to amplify; this one has to stumble on it."
        )
    sft = start_model(loaded.device)
    form = SettingsForm(RefusalSettings, "rl_refuse_")
    for name, column in zip(("caution", "compare", "beta"), st.columns([2, 2, 1]), strict=True):
        form.widget(name, column)
    with setup("More settings"):
        for name, column in zip(("steps", "seed"), st.columns(2), strict=True):
            form.widget(name, column)
    settings = form.done()
    configs = settings.configs()
    try:
        for cfg in configs:
            refusal.check(cfg)
    except (refusal.RefusalInputError, ValueError) as err:
        st.error(str(err), icon="⚠️")
        return

    def make_job() -> Job:
        return Job("rl-over-refusal", refusal.refusal_work(sft, configs))

    cautions = " and ".join(f"{c.caution:g}" for c in configs)
    run_panel(
        JOB,
        make_job,
        draw_run,
        start_label="Train and compare",
        idle_message=f"Press Train and compare: safety SFT from {sft.name}, then for labeller caution {cautions} a "
        f"reward model and {configs[0].ppo_steps} PPO steps at β = {configs[0].beta:g} (about "
        f"{15 + 40 * len(configs)} s on 2 cores).",
    )
    show_code(refusal.labeller_utility, refusal.preference_rows)


def draw_run(job: Job) -> None:
    stages = job.notes_of(Stage)
    if job.running and stages:
        rows = job.snapshot()
        step = f", step {rows[-1]['step']:g}" if rows and "PPO" in stages[-1].text else ""
        st.caption(f"{stages[-1].text}{step}…")
    start = job.notes_of(PolicyRates)  # tiny-sft, then the safety-SFT model
    arms = job.notes_of(ArmResult)
    if len(start) < 2:
        return
    before = start[1]
    draw_rates([*start, *(a.policy for a in arms)])
    for arm in arms:
        st.caption(verdict(before, arm))
    if arms:
        draw_reward_models(arms)
        draw_examples(before, arms)


def draw_rates(policies: list[PolicyRates]) -> None:
    kinds = [KIND_LABELS[k] for k in KINDS]
    c1, c2 = st.columns(2)
    refused = {p.name: [p.rates[k].refusal for k in KINDS] for p in policies}
    chart(
        plots.grouped_bars(kinds, refused, f'Refusal rate ("{REFUSAL}") per kind of question', "question",
                           "share of sampled answers that refuse"),
        "rl_refuse_refusals", c1,
    )  # fmt: skip
    declined = {p.name: [p.rates[k].declined for k in KINDS] for p in policies}
    chart(
        plots.grouped_bars(kinds, declined, "No answer at all (names no capital)", "question",
                           "share of sampled answers naming no capital"),
        "rl_refuse_declined", c2,
    )  # fmt: skip
    helpful = {p.name: [p.rates["harmless"].correct, p.rates["looks risky"].correct, p.helpfulness] for p in policies}
    chart(
        plots.grouped_bars(
            [KIND_LABELS["harmless"], KIND_LABELS["looks risky"], "all harmless questions"], helpful,
            "Helpfulness: right answers to harmless questions", "question", "share of sampled answers that are right",
        ),
        "rl_refuse_helpfulness",
    )  # fmt: skip
    st.caption(
        'Refusals count answers that start with the refusal ("No.", "Noo."); "no answer" counts every answer '
        'that names no capital: refusals, garbled refusals ("NN.") and off-topic text. Genuinely risky questions '
        "have no right answer, so they are left out of helpfulness. 80 answers per kind and model (2 per country)."
    )


def verdict(before: PolicyRates, arm: ArmResult) -> str:
    """One arm's outcome in words, from the numbers measured."""
    b, a = before.rates, arm.policy.rates
    return (
        f"Caution {arm.config.caution:g}: on looks-risky questions refusals {b['looks risky'].refusal:.0%} → "
        f"{a['looks risky'].refusal:.0%}, no answer {b['looks risky'].declined:.0%} → {a['looks risky'].declined:.0%}, "
        f"right {b['looks risky'].correct:.0%} → {a['looks risky'].correct:.0%}; on plain harmless ones right "
        f"{b['harmless'].correct:.0%} → {a['harmless'].correct:.0%}; refusals on genuinely risky ones "
        f"{b['risky'].refusal:.0%} → {a['risky'].refusal:.0%}. KL {arm.kl:.1f} nats per answer; the reward model "
        f"ranks {arm.rm_accuracy:.0%} of the held-out countries' pairs as its labellers did."
    )


def draw_reward_models(arms: list[ArmResult]) -> None:
    st.markdown("**What each reward model learned** (mean score on the 10 held-out countries' questions)")
    table = [
        {"labellers": f"caution {arm.config.caution:g}", "question": KIND_LABELS[kind],
         **{f"{name} answer": round(value, 1) for name, value in arm.rm_scores[kind].items()}}
        for arm in arms for kind in KINDS
    ]  # fmt: skip
    st.dataframe(table, hide_index=True)


def draw_examples(before: PolicyRates, arms: list[ArmResult]) -> None:
    st.markdown("**The same questions, first sampled answer of each model**")
    rows = []
    for i, (kind, question, answer) in enumerate(before.examples[:12]):
        row = {"kind": kind, "question": question, before.name: answer}
        row |= {arm.policy.name: arm.policy.examples[i][2] for arm in arms}
        rows.append(row)
    st.dataframe(rows, hide_index=True)
