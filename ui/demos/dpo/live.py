"""Live DPO: a copy of tiny-sft trained with trl's DPOTrainer on the preference pairs in a background job, another
frozen copy as the reference; trl's metrics live, then the policy against the start model on held-out pairs and
greedy answers before and after (llmlab.dpo_experiments.dpo_work)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from llmlab import dpo, plots, preferences
from llmlab.dpo_experiments import DPOOutcome, dpo_work
from llmlab.jobs import Job, overshooting
from llmlab.modeling import LoadedModel
from ui.demos.dpo.shared import ASKED, LIVE_JOB, LIVE_PREFIX, LIVE_RUNS, LiveSettings, pairs
from ui.download import download_button, note_start, started
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import SettingsForm

REDRAW = FRAGMENT_UNLESS_RUNNING
HELDOUT_HELP = (
    "Share of held-out pairs (fresh answers the run never trained on) whose implicit reward β·log π/π_ref ranks "
    "the chosen answer above the rejected one. The start model ties every pair with itself: 50%, chance."
)
KL_HELP = (
    "KL(π ‖ π_ref): how far the trained policy's answers moved from the start model's, summed over the tokens of "
    "answers sampled from the policy (nats per answer)."
)


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    settings = SettingsForm(LiveSettings, LIVE_PREFIX).draw(columns=4).config()
    train, heldout = pairs("train"), pairs("test")
    run_panel(
        LIVE_JOB,
        lambda: note_start(
            Job("dpo-live", dpo_work(start, train, heldout, settings, preferences.true_reward, asked=ASKED)),
            start.name,
            start.tokenizer,
        ),
        lambda job: draw_live(job, settings.steps, start.name),
        start_label="Start DPO",
        idle_message=(
            f"Start trains a copy of {start.name} with trl's DPOTrainer on {len(train)} preference pairs "
            f"({settings.batch_size} per step): its own answers, one right against one wrong, labelled by "
            "correctness. Another frozen copy is the reference. Then it compares policy and start model on "
            f"{len(heldout)} held-out pairs (mistakes no training pair holds) and on fresh answers to all "
            f"{len(ASKED)} questions. Set the NLL weight to 0 for plain DPO, and watch log π(chosen) in the last "
            "panel: the 'What goes wrong' tab says why."
        ),
    )


def draw_live(job: Job, steps: int, start_name: str) -> None:
    metrics = job.snapshot()
    if not metrics:
        st.caption(f"Tokenizing the pairs and copying {start_name}…")
        return
    last = metrics[-1]
    st.caption(
        f"Step {int(last['step'])} of {steps}: loss {last['loss']:.3f}, margin {last['rewards/margins']:.3f}, "
        f"batch accuracy {last['rewards/accuracies']:.0%}"
    )
    series = {key: [m[key] for m in metrics] for key in dpo.LOG_KEYS}
    steps_done = [m["step"] for m in metrics]
    chart(plots.dpo_run_curves(steps_done, series, "Live DPO: trl's metrics per step"), "dpo_live_chart")
    if overshooting(series["loss"], dpo.OVERSHOOT_LOSS):
        st.warning(
            f"The loss is above 2·log 2 ≈ {dpo.OVERSHOOT_LOSS:.2f} (where it started at log 2): the updates "
            "overshoot. Lower the learning rate, or the β.",
            icon="📈",
        )
    if job.result is not None:
        draw_outcome(job, job.result)


def draw_outcome(job: Job, outcome: DPOOutcome) -> None:
    if not LIVE_RUNS.has(job):
        LIVE_RUNS.keep(job, outcome.summary())  # for the DPO vs RLHF tab's frontier
    report = outcome.heldout
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        "held-out preference accuracy",
        f"{report.accuracy_after:.0%}",
        f"{100 * (report.accuracy_after - report.accuracy_before):+.0f} points",
        help=HELDOUT_HELP,
    )
    c2.metric("KL to the reference", f"{report.kl:.2f} nats", help=KL_HELP)
    if report.reward_after is not None and report.reward_before is not None:
        c3.metric(
            "right answers (sampled)",
            f"{report.reward_after:.0%}",
            f"{100 * (report.reward_after - report.reward_before):+.0f} points",
            help="Share of answers sampled for the held-out questions that name the right value (the preference "
            "data's true reward), against the start model's.",
        )
    c4.metric("wall time", f"{outcome.wall_s:.1f} s", help="Training plus evaluation, this session's job.")
    (chosen_ref, chosen_pol), (rejected_ref, rejected_pol) = report.logp_chosen, report.logp_rejected
    both_fell = chosen_pol < chosen_ref and rejected_pol < rejected_ref
    st.caption(
        f"On the held-out pairs, mean log π(chosen) went {chosen_ref:.1f} → {chosen_pol:.1f} nats and "
        f"log π(rejected) {rejected_ref:.1f} → {rejected_pol:.1f}."
        + (
            " **Both fell**: DPO only asks the *gap* to grow relative to the reference, so it can push the "
            "chosen answers down too, as long as the rejected ones fall faster."
            if both_fell
            else ""
        )
    )
    st.markdown("**Before and after** (greedy answers to held-out questions)")
    st.dataframe(pd.DataFrame(outcome.answers), hide_index=True, key="dpo_live_answers")
    if (begun := started(job)) is not None:
        metrics = {"steps": outcome.run.steps_done, "held-out preference accuracy": report.accuracy_after,
                   "KL to the reference (nats)": report.kl, "right answers (sampled)": report.reward_after}  # fmt: skip
        download_button("dpo", outcome.run.policy, begun.tokenizer, outcome.run.settings, begun.start_model, metrics,
                        key="dpo_live_download")  # fmt: skip
