"""The loss: −log σ(β·margin) and its gradient weight σ(−β·margin) for several β (llmlab.dpo.loss_curves), then
the implicit reward β·log π/π_ref of one pair, from the policy's and the reference's log-probs
(llmlab.dpo.score_pairs): the latest live run's policy, or the start model itself before any run."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import dpo, preferences
from llmlab.modeling import LoadedModel
from ui.demos.dpo.shared import LIVE_JOB, live_settings, pairs
from ui.instant import instant_demo
from ui.models import start_model
from ui.runs import current_job
from ui.settings import SELECTBOX, SettingsForm, option
from ui.text import md_escape

OWN_PAIR = "Write your own pair…"


def _pair_label(i: int, pair: dict) -> str:
    return f"{i + 1}. {preferences.question_text(pair['prompt'])} ✓ {pair['chosen'][:50]} ✗ {pair['rejected'][:50]}"


# The first 12 held-out pairs (shared.pairs("test")[:12]; a few ms, so at import: the option needs its default).
EXAMPLES = (
    *(_pair_label(i, p) for i, p in enumerate(preferences.preference_pairs(seed=0, split="test")[:12])),
    OWN_PAIR,
)


@dataclass(frozen=True)
class LossSettings:
    beta: float = option(
        "β (drag: the orange curves follow)", 0.1, choices=dpo.LOSS_BETAS,
        help="The β of the highlighted curves, computed in your browser while you drag (0.01 to 10, log scale).",
    )  # fmt: skip
    betas: tuple[float, ...] = option("β values to compare", (0.5, 1.0), choices=dpo.BETA_CHOICES)
    example: str = option("Example pair (held-out pairs)", EXAMPLES[0], choices=EXAMPLES, widget=SELECTBOX)


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    form = SettingsForm(LossSettings, "dpo_loss_")
    betas = form.widget("betas")
    if not betas:
        st.info("No β picked to compare: only the slider's curves are drawn.", icon="📈")
    # The slider's β redraws the curves in the browser, while it is dragged (ui/instant.py; llmlab.dpo's formulas).
    margins = dpo.loss_curves([1.0], margin_range=(-20.0, 20.0), n=161)[0].margins
    instant_demo("dpo_loss_live", "dpo_loss", form, ["beta"], {"betas": sorted(betas), "margins": margins})
    st.caption(
        "The margin is how much more the policy raised the chosen answer than the rejected one, relative to "
        "the reference. Right of 0 the pair is already ranked right and its gradient weight fades; a small β "
        "keeps pushing until the margin is huge, which is how the policy drifts far from the reference."
    )
    st.markdown("#### The implicit reward on one pair")
    example = form.widget("example")
    form.done()
    implicit_reward(start, example)


def _example_pair(example: str) -> dict:
    if example != OWN_PAIR:
        return pairs("test")[EXAMPLES.index(example)]
    c1, c2, c3 = st.columns(3)
    question = c1.text_input("Prompt", "What is the capital of France?", max_chars=300, key="dpo_own_prompt")
    chosen = c2.text_input("Chosen answer", "The capital of France is Paris.", max_chars=300, key="dpo_own_chosen")
    rejected = c3.text_input("Rejected answer", "The capital of France is Rome.", max_chars=300, key="dpo_own_rejected")
    return {"prompt": preferences.chat_prompt(question.strip()), "chosen": chosen, "rejected": rejected}


def _policy(start: LoadedModel) -> tuple[object, float, str]:
    """The latest finished live run's policy, or the start model itself (then every log-ratio is 0)."""
    job = current_job(LIVE_JOB)
    if job is not None and job.result is not None:
        run = job.result.run
        beta = run.settings.beta
        return run.policy, beta, f"the policy of your live run (β = {beta:g}, {run.steps_done} steps)"
    beta = live_settings().beta
    return start.model, beta, f"{start.name} itself (no DPO run yet: policy = reference, so every log-ratio is 0)"


def implicit_reward(start: LoadedModel, example: str) -> None:
    pair = _example_pair(example)
    policy, beta, who = _policy(start)
    try:
        [score] = dpo.score_pairs(policy, start.model, start.tokenizer, [pair])
    except dpo.PairError as err:
        st.info(str(err), icon="✍️")
        return
    st.caption(
        f"Policy π: {who}. Reference π_ref: {start.name}. β = {beta:g}. Log-probs are summed over the answer's tokens."
    )
    st.markdown(
        f"**Chosen:** {md_escape(dpo.answer_text(pair['chosen']))}  \n"
        f"**Rejected:** {md_escape(dpo.answer_text(pair['rejected']))}"
    )
    rows = {
        "log π (nats)": (score.policy_chosen, score.policy_rejected),
        "log π_ref (nats)": (score.reference_chosen, score.reference_rejected),
        "log-ratio Δ = log π − log π_ref (nats)": (score.chosen_logratio, score.rejected_logratio),
        "implicit reward β·Δ": (score.reward_chosen(beta), score.reward_rejected(beta)),
    }
    table = [{"quantity": name, "chosen": round(c, 4), "rejected": round(r, 4)} for name, (c, r) in rows.items()]
    st.dataframe(pd.DataFrame(table), hide_index=True, key="dpo_example_table")
    m1, m2, m3 = st.columns(3)
    m1.metric("margin (nats)", f"{score.margin:.3f}", help="Δ_chosen − Δ_rejected")
    m2.metric("loss (nats)", f"{score.loss(beta):.4f}", help="−log σ(β·margin)")
    m3.metric("gradient weight", f"{score.gradient_weight(beta):.3f}", help="σ(−β·margin)")
    st.caption(
        f"loss = −log σ({beta:g} × {score.margin:.3f}) = {score.loss(beta):.4f}. No reward model anywhere: the "
        "reward is read off the two models' log-probs."
    )
