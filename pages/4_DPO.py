"""DPO: the card beside six demos, one tab each, all on a real tiny model with trl's DPOTrainer.

1. The loss: −log σ(β·margin) and its gradient weight σ(−β·margin) for several β; the implicit reward
   β·log π/π_ref of one pair, with the policy's and the reference's log-probs.
2. Live DPO: a copy of tiny-sft trained on preference pairs in a background job; live trl metrics, before/after.
3. β sweep: one run per β on the same seed and data; held-out preference accuracy and KL against β, CSV export.
4. DPO vs RLHF: reward against KL on one chart, with wall time and models in memory.
5. Offline limit: DPO on capital questions only, scored on every kind of question.
6. Single annotator: a labeller who always prefers the longer answer vs one who prefers the right answer.
7. Vote as a room (ui/crowd_train.py): the RLHF page's crowd votes; DPO on everyone's or one voter's.

    streamlit run app.py   # then "4 · DPO" in the sidebar
    # settings round-trip through the URL: ?dpo_beta=0.1&dpo_steps=50&dpo_lr=0.0002
"""

import streamlit as st

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import lesson_layout
from ui.shell import begin_page, show_advanced

TRY_IT = {
    "dpo-q1": "DPO vs RLHF tab: the same reward-vs-KL axes for both methods, with what each keeps in memory.",
    "dpo-q2": "Offline limit tab: train on capital questions only, then compare capitals with the kinds of "
    "question no pair covers.",
    "dpo-q3": "Single annotator tab: train on a labeller who always prefers the longer answer. Vote as a "
    "room: the presenter trains DPO on one attendee's votes, then on everyone's.",
    "dpo-q4": "β sweep tab: run β = 0.01 … 1 and watch accuracy and KL trade off; the loss tab shows why.",
}
model_slot = begin_page("DPO", "🎯")
demo_area = lesson_layout("dpo", TRY_IT)

# The card is on screen now. The demo's imports (torch, transformers, trl: seconds on a fresh server) follow.
import math

import pandas as pd

from llmlab import dpo, plots, preferences
from llmlab.jobs import Job
from llmlab.modeling import DEFAULT_MODEL, bundled_models
from ui import urlstate
from ui.crowd_train import crowd_tab
from ui.frame import demo_tabs, page_frame, shared_model
from ui.runs import current_job, fragment_unless_running, run_panel
from ui.text import md_escape

START_MODEL = "tiny-sft" if "tiny-sft" in bundled_models() else DEFAULT_MODEL
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0)
LOSS_BETAS = (0.1, 0.5, 1.0)
SWEEP_KEPT = "dpo_sweep_kept"  # {job id: [SweepPoint]}: every finished sweep of this session
LIVE_KEPT = "dpo_live_kept"  # {job id: DPOOutcome summary row}: every finished live run of this session
RLHF_KEPT = "dpo_rlhf_kept"  # {job id: [FrontierPoint]}: every finished RLHF comparison of this session
RLHF_PAGE_KEPT = "dpo_rlhf_page_kept"  # {job id: [FrontierPoint]}: the RLHF page's online runs, scored here
OWN_PAIR = "Write your own pair…"

loaded = page_frame(model_slot)
start = shared_model(START_MODEL, loaded.device)
DEFAULTS = dpo.DPOSettings()


@st.cache_data(show_spinner=False)
def pairs(split: str, biased: bool = False) -> list[dict]:
    """The RLHF page's preference pairs (seed 0): "train", and "test": fresh pairs on the same questions."""
    return preferences.preference_pairs(seed=0, biased=biased, split=split)


def _run_id(job: Job) -> str:
    """A finished run's key in this session's kept results (object ids can be reused after a Reset)."""
    return f"{job.name}@{job.started_at}"


def _fmt_lr(x: float) -> str:
    return f"{x:g}"


def _pair_label(i: int, pair: dict) -> str:
    return f"{i + 1}. {preferences.question_text(pair['prompt'])} ✓ {pair['chosen'][:50]} ✗ {pair['rejected'][:50]}"


# Every setting round-trips through the URL (?dpo_beta=0.05&dpo_sweep_betas=0.01,0.1,1 ...); widgets take their
# value from these keys. Presenter mode hides the advanced ones (the learning rates); their values still apply.
EXAMPLES = (*(_pair_label(i, p) for i, p in enumerate(pairs("test")[:12])), OWN_PAIR)
LOSS_SETTINGS = (
    urlstate.Param("dpo_loss_betas", LOSS_BETAS, choices=dpo.BETA_CHOICES),
    urlstate.Param("dpo_example", EXAMPLES[0], choices=EXAMPLES),
)
BETA = urlstate.Param("dpo_beta", DEFAULTS.beta, choices=dpo.BETA_CHOICES)
STEPS = urlstate.Param("dpo_steps", DEFAULTS.steps, lo=10, hi=300)
LR = urlstate.Param("dpo_lr", DEFAULTS.learning_rate, choices=LEARNING_RATES)
SETTINGS = (BETA, STEPS, LR)  # the Live DPO tab's; the Offline limit and Single annotator tabs use them too
SWEEP_STEPS = urlstate.Param("dpo_sweep_steps", 150, lo=20, hi=300)
SWEEP_LR = urlstate.Param("dpo_sweep_lr", DEFAULTS.learning_rate, choices=LEARNING_RATES)
SWEEP_SETTINGS = (urlstate.Param("dpo_sweep_betas", dpo.SWEEP_BETAS, choices=dpo.BETA_CHOICES), SWEEP_STEPS, SWEEP_LR)
RLHF_STEPS = urlstate.Param("dpo_rlhf_steps", 30, lo=10, hi=100)
RLHF_SETTINGS = (urlstate.Param("dpo_rlhf_betas", (0.01, 0.1, 1.0), choices=dpo.BETA_CHOICES), RLHF_STEPS)
COVER_SETTINGS = (urlstate.Param("dpo_cover_kinds", ("capital",), choices=preferences.KINDS),)
PAGE_SETTINGS = LOSS_SETTINGS + SETTINGS + SWEEP_SETTINGS + RLHF_SETTINGS + COVER_SETTINGS


# -- settings: sliders that round-trip through the URL ----------------------------------------------------


def _repair_state() -> None:
    """A value put in session state from outside the sliders (a test, a stale session) must not crash them."""
    beta = st.session_state.get(BETA.key)
    if beta not in dpo.BETA_CHOICES:
        problems = dpo.settings_problems(beta, DEFAULTS.steps, DEFAULTS.learning_rate)
        positive = not problems
        st.session_state[BETA.key] = dpo.nearest_beta(beta) if positive else DEFAULTS.beta
        st.warning((problems[0] + " " if problems else "") + f"Using β = {st.session_state[BETA.key]:g}.", icon="🔗")
    if st.session_state.get(LR.key) not in LEARNING_RATES:
        st.session_state[LR.key] = DEFAULTS.learning_rate


def restore_settings() -> None:
    """Before any widget: the URL's settings (once per session), each bad one with a notice saying why."""
    raw_beta = st.query_params.get(BETA.key)
    for notice in urlstate.restore(PAGE_SETTINGS, "dpo_"):
        reason = ""
        if notice.startswith(f"'{BETA.key}=") and raw_beta is not None:
            problems = dpo.settings_problems(_as_float(raw_beta), DEFAULTS.steps, DEFAULTS.learning_rate)
            reason = (problems[0] + " ") if problems else "β must be one of the slider's values. "
        st.warning(reason + notice, icon="🔗")
    _repair_state()


def settings_widgets() -> dpo.DPOSettings:
    """β, steps and learning rate; they round-trip through the URL (?dpo_beta=0.05&dpo_steps=100&dpo_lr=0.0003)."""
    c1, c2, c3 = st.columns(3)
    beta = c1.select_slider(
        "β (log scale)", dpo.BETA_CHOICES, key=BETA.key, format_func=_fmt_lr, help=dpo.DPOSettings.help("beta")
    )
    steps = c2.slider("Steps", STEPS.lo, STEPS.hi, step=10, key=STEPS.key, help=dpo.DPOSettings.help("steps"))
    if show_advanced():
        c3.select_slider(
            "Learning rate", LEARNING_RATES, key=LR.key, format_func=_fmt_lr, help=dpo.DPOSettings.help("learning_rate")
        )
    urlstate.publish(SETTINGS)
    return dpo.DPOSettings(beta=float(beta), steps=int(steps), learning_rate=float(st.session_state[LR.key]))


def _as_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return float("nan")


# -- 1. the loss, drawn ----------------------------------------------------------------------------------


@st.fragment
def loss_tab() -> None:
    betas = st.multiselect("β values to draw", dpo.BETA_CHOICES, key="dpo_loss_betas", format_func=_fmt_lr)
    if not betas:
        st.info("Pick at least one β to draw its loss.", icon="📈")
    else:
        curves = dpo.loss_curves(sorted(betas), margin_range=(-20.0, 20.0))
        st.plotly_chart(
            plots.dpo_loss_chart([(c.beta, c.margins, c.loss, c.gradient_weight) for c in curves]),
            key="dpo_loss_chart",
        )
        st.caption(
            "The margin is how much more the policy raised the chosen answer than the rejected one, relative to "
            "the reference. Right of 0 the pair is already ranked right and its gradient weight fades; a small β "
            "keeps pushing until the margin is huge, which is how the policy drifts far from the reference."
        )
    st.markdown("#### The implicit reward on one pair")
    implicit_reward_example()
    urlstate.publish(LOSS_SETTINGS)


def _policy_for_example() -> tuple[object, float, str]:
    """The latest finished live run's policy, or the start model itself (then every log-ratio is 0)."""
    job = current_job("dpo_live")
    if job is not None and job.result is not None:
        run = job.result.run
        return (
            run.policy,
            run.settings.beta,
            f"the policy of your live run (β = {run.settings.beta:g}, {run.steps_done} steps)",
        )
    beta = float(st.session_state.get("dpo_beta", DEFAULTS.beta))
    return start.model, beta, f"{START_MODEL} itself (no DPO run yet: policy = reference, so every log-ratio is 0)"


def implicit_reward_example() -> None:
    heldout = pairs("test")[:12]
    options = list(EXAMPLES)
    choice = st.selectbox("Example pair (held-out pairs)", options, key="dpo_example")
    if choice == OWN_PAIR:
        c1, c2, c3 = st.columns(3)
        question = c1.text_input("Prompt", "What is the capital of France?", max_chars=300, key="dpo_own_prompt")
        chosen = c2.text_input("Chosen answer", "The capital of France is Paris.", max_chars=300, key="dpo_own_chosen")
        rejected = c3.text_input(
            "Rejected answer", "The capital of France is Rome.", max_chars=300, key="dpo_own_rejected"
        )
        pair = {"prompt": preferences.chat_prompt(question.strip()), "chosen": chosen, "rejected": rejected}
    else:
        pair = heldout[options.index(choice)]
    policy, beta, who = _policy_for_example()
    try:
        [score] = dpo.score_pairs(policy, start.model, start.tokenizer, [pair])
    except dpo.PairError as err:
        st.info(str(err), icon="✍️")
        return
    st.caption(
        f"Policy π: {who}. Reference π_ref: {START_MODEL}. β = {beta:g}. Log-probs are summed over the answer's tokens."
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
    st.dataframe(
        pd.DataFrame(
            [{"quantity": name, "chosen": round(c, 4), "rejected": round(r, 4)} for name, (c, r) in rows.items()]
        ),
        hide_index=True,
        key="dpo_example_table",
    )
    m1, m2, m3 = st.columns(3)
    m1.metric("margin Δ_chosen − Δ_rejected", f"{score.margin:.3f} nats")
    m2.metric("loss −log σ(β·margin)", f"{score.loss(beta):.4f} nats")
    m3.metric("gradient weight σ(−β·margin)", f"{score.gradient_weight(beta):.3f}")
    st.caption(
        f"loss = −log σ({beta:g} × {score.margin:.3f}) = {score.loss(beta):.4f}. No reward model anywhere: the "
        "reward is read off the two models' log-probs."
    )


# -- 2. live DPO -----------------------------------------------------------------------------------------


@fragment_unless_running
def live_tab() -> None:
    settings = settings_widgets()
    train, heldout = pairs("train"), pairs("test")

    def make_job() -> Job:
        work = dpo.dpo_work(start, train, heldout, settings, preferences.true_reward)
        return Job("dpo-live", work)

    run_panel(
        "dpo_live",
        make_job,
        lambda job: draw_live(job, settings.steps),
        start_label="Start DPO",
        idle_message=(
            f"Start trains a copy of {START_MODEL} with trl's DPOTrainer on {len(train)} preference pairs "
            f"({settings.batch_size} per step), with another frozen copy as the reference; then compares "
            f"it with the start model on {len(heldout)} held-out pairs (new answers to the same questions)."
        ),
    )


def draw_live(job: Job, steps: int) -> None:
    metrics = job.snapshot()
    if not metrics:
        st.caption(f"Tokenizing the pairs and copying {START_MODEL}…")
        return
    last = metrics[-1]
    st.caption(
        f"Step {int(last['step'])} of {steps}: loss {last['loss']:.3f}, margin {last['rewards/margins']:.3f}, "
        f"batch accuracy {last['rewards/accuracies']:.0%}"
    )
    series = {key: [m[key] for m in metrics] for key in dpo.LOG_KEYS}
    st.plotly_chart(
        plots.dpo_run_curves([m["step"] for m in metrics], series, "Live DPO: trl's metrics per step"),
        key="dpo_live_chart",
    )
    recent = [m["loss"] for m in metrics[-5:]]
    if len(metrics) >= 5 and sum(recent) / len(recent) > 2 * math.log(2):
        st.warning(
            f"The loss is above 2·log 2 ≈ {2 * math.log(2):.2f} (where it started at log 2): the updates overshoot. "
            "Lower the learning rate, or the β.",
            icon="📈",
        )
    outcome = job.result
    if outcome is None:
        return
    _remember_live(job)
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


HELDOUT_HELP = (
    "Share of held-out pairs (fresh answers the run never trained on) whose implicit reward β·log π/π_ref ranks "
    "the chosen answer above the rejected one. The start model ties every pair with itself: 50%, chance."
)
KL_HELP = (
    "KL(π ‖ π_ref): how far the trained policy's answers moved from the start model's, summed over the tokens of "
    "answers sampled from the policy (nats per answer)."
)


def _remember_live(job: Job) -> None:
    kept = st.session_state.setdefault(LIVE_KEPT, {})
    if _run_id(job) in kept:
        return
    outcome = job.result
    report = outcome.heldout
    kept[_run_id(job)] = {
        "beta": outcome.run.settings.beta,
        "steps": outcome.run.steps_done,
        "learning_rate": outcome.run.settings.learning_rate,
        "kl": report.kl,
        "reward": report.reward_after,
        "reference_reward": report.reward_before,
        "train_s": outcome.run.train_s,
        "wall_s": outcome.wall_s,
    }


# -- 3. β sweep ------------------------------------------------------------------------------------------


@fragment_unless_running
def sweep_tab() -> None:
    c1, c2, c3 = st.columns([2, 1, 1])
    betas = c1.multiselect("β values", dpo.BETA_CHOICES, key="dpo_sweep_betas", format_func=_fmt_lr)
    steps = c2.slider(
        "Steps per β",
        SWEEP_STEPS.lo,
        SWEEP_STEPS.hi,
        step=10,
        key=SWEEP_STEPS.key,
        help="Over ~50 steps β mostly rescales the loss; over 150–200 the small-β runs drift away.",
    )
    if show_advanced():
        c3.select_slider("Learning rate", LEARNING_RATES, key=SWEEP_LR.key, format_func=_fmt_lr)
    lr = st.session_state[SWEEP_LR.key]
    urlstate.publish(SWEEP_SETTINGS)
    if not betas:
        st.info("Pick at least one β to sweep.", icon="📈")
        return
    settings = dpo.DPOSettings(steps=int(steps), learning_rate=float(lr), batch_size=dpo.SWEEP_BATCH_SIZE)
    train, heldout = pairs("train"), pairs("test")
    chosen = sorted(betas)

    def make_job() -> Job:
        return Job(
            "dpo-sweep",
            dpo.sweep_work(start, train, heldout, settings, chosen, reward_fn=preferences.true_reward),
        )

    run_panel(
        "dpo_sweep",
        make_job,
        lambda job: draw_sweep(job, len(chosen), settings.steps),
        start_label=f"Run the sweep ({len(chosen)} runs)",
        idle_message=(
            f"One DPO run of {settings.steps} steps ({settings.batch_size} pairs each) per β, same seed and pairs, "
            f"each from {START_MODEL}; "
            "then each policy is scored on held-out pairs and its drift from the reference is measured."
        ),
    )
    kept_sweep_table()


def draw_sweep(job: Job, n_betas: int, steps: int) -> None:
    points = [n["point"] for n in list(job.notes) if "point" in n]
    metrics = job.snapshot()
    if job.running and metrics:
        last = metrics[-1]
        st.caption(f"β = {last['beta']:g}: step {int(last['step'])} of {steps} ({len(points)} of {n_betas} β done)")
    if points:
        st.plotly_chart(
            plots.beta_sweep_chart(
                [p.beta for p in points],
                [p.heldout_accuracy for p in points],
                [p.kl for p in points],
                points[0].reference_accuracy,
            ),
            key="dpo_sweep_chart",
        )
    if not job.running and points:
        st.session_state.setdefault(SWEEP_KEPT, {})[_run_id(job)] = points


def kept_sweep_table() -> None:
    kept = [p for points in st.session_state.get(SWEEP_KEPT, {}).values() for p in points]
    if not kept:
        return
    st.markdown(f"**This session's sweep results** ({len(kept)} runs, kept until you close the tab)")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "β": p.beta,
                    "steps": p.steps,
                    "lr": p.learning_rate,
                    "held-out accuracy": f"{p.heldout_accuracy:.0%}",
                    "KL (nats)": round(p.kl, 3),
                    "right answers": "" if p.reward is None else f"{p.reward:.0%}",
                    "log π(chosen) start → end": f"{p.logp_chosen_start:.1f} → {p.logp_chosen_end:.1f}",
                    "train s": round(p.train_s, 1),
                }
                for p in kept
            ]
        ),
        hide_index=True,
        key="dpo_sweep_table",
    )
    st.download_button(
        "Download as CSV",
        dpo.sweep_csv(kept),
        file_name="dpo_beta_sweep.csv",
        mime="text/csv",
        key="dpo_sweep_results_csv",
    )


# -- 4. DPO vs RLHF ----------------------------------------------------------------------------------------


@fragment_unless_running
def frontier_tab() -> None:
    st.markdown(
        "DPO and KL-penalised RLHF optimise the same objective, max E[reward] − β·KL(π ‖ π_ref). Here both start "
        f"from {START_MODEL} and learn from the same preference pairs; every policy is scored the same way: the share "
        "of right answers it samples for the held-out questions, against its KL to the start model."
    )
    c1, c2 = st.columns([2, 1])
    betas = c1.multiselect(
        "β values for RLHF (its KL coefficient)", dpo.BETA_CHOICES, key="dpo_rlhf_betas", format_func=_fmt_lr
    )
    rl_steps = c2.slider("RL steps per β", RLHF_STEPS.lo, RLHF_STEPS.hi, step=10, key=RLHF_STEPS.key)
    urlstate.publish(RLHF_SETTINGS)
    if betas:
        chosen = sorted(betas)

        def make_job() -> Job:
            work = dpo.rlhf_frontier_work(start, pairs("test"), chosen, rl_steps, preferences.true_reward)
            return Job("dpo-rlhf", work)

        run_panel(
            "dpo_rlhf",
            make_job,
            lambda job: draw_rlhf(job, rl_steps),
            start_label=f"Run RLHF at {len(chosen)} β",
            idle_message=(
                "Runs the RLHF page's pipeline: a reward model (trl RewardTrainer) on the same pairs, then online RL "
                f"(trl RLOOTrainer, {rl_steps} steps) from {START_MODEL} at each β. DPO points come from the β sweep "
                "and live-run tabs."
            ),
        )
    else:
        st.info("Pick at least one β for the RLHF runs.", icon="📈")
    frontier_chart()


def draw_rlhf(job: Job, rl_steps: int) -> None:
    metrics = job.snapshot()
    if job.running:
        if not metrics:
            st.caption("Training the reward model on the preference pairs…")
        else:
            st.caption(f"RLHF at β = {metrics[-1].get('beta', 0):g}: step {int(metrics[-1]['step'])} of {rl_steps}")
    points = [n["point"] for n in list(job.notes) if "point" in n]
    if not job.running and points:
        st.session_state.setdefault(RLHF_KEPT, {})[_run_id(job)] = points


def rlhf_page_points() -> list:
    """The RLHF page's online runs of this session (job "rl_online"), scored once like the DPO policies."""
    kept = st.session_state.setdefault(RLHF_PAGE_KEPT, {})
    job = current_job("rl_online")
    if job is not None and not job.running and job.result and _run_id(job) not in kept:
        with st.spinner("Scoring the RLHF page's policies the same way as the DPO ones…"):
            kept[_run_id(job)] = [
                dpo.rlhf_point(run, start, pairs("test"), preferences.true_reward) for run in job.result
            ]
    return [p for points in kept.values() for p in points]


def frontier_chart() -> None:
    sweep = [p for points in st.session_state.get(SWEEP_KEPT, {}).values() for p in points]
    live = list(st.session_state.get(LIVE_KEPT, {}).values())
    rlhf = [p for points in st.session_state.get(RLHF_KEPT, {}).values() for p in points]
    from_rlhf_page = rlhf_page_points()
    points = [("DPO", f"β={p.beta:g}", p.kl, p.reward) for p in sweep if p.reward is not None]
    points += [("DPO", f"β={r['beta']:g} (live)", r["kl"], r["reward"]) for r in live if r["reward"] is not None]
    points += [(p.method, f"β={p.beta:g}", p.kl, p.reward) for p in rlhf if p.reward is not None]
    points += [
        (f"{p.method}, RLHF page", f"β={p.beta:g}", p.kl, p.reward) for p in from_rlhf_page if p.reward is not None
    ]
    if not points:
        st.info(
            "No policies yet: run the β sweep or a live DPO run, and RLHF above (runs on the RLHF page's online-RL "
            "tab show up here too).",
            icon="📈",
        )
        return
    references = [p.reference_reward for p in sweep + rlhf + from_rlhf_page] + [r["reference_reward"] for r in live]
    reference = next((r for r in references if r is not None), None)
    if reference is not None:
        points.append((f"{START_MODEL} (start)", "start", 0.0, reference))
    st.plotly_chart(
        plots.reward_kl_frontier(points, "DPO and RLHF on one frontier: right answers against drift"),
        key="dpo_frontier_chart",
    )
    dpo_walls = [p.train_s for p in sweep] + [r["train_s"] for r in live]
    rows = []
    if dpo_walls:
        rows.append(
            {
                "method": "DPO (trl DPOTrainer)",
                "policies": len(dpo_walls),
                "training per policy (s)": round(sum(dpo_walls) / len(dpo_walls), 1),
                "needed first (s)": "nothing",
                "models in memory while training": f"{dpo.DPO_MODELS_IN_MEMORY}: policy + frozen reference",
                "samples answers while training": "no (offline pairs)",
            }
        )
    for method in dict.fromkeys(p.method for p in rlhf + from_rlhf_page):
        runs = [p for p in rlhf + from_rlhf_page if p.method == method]
        extra = [p.extra_s for p in runs if p.extra_s > 0]
        rows.append(
            {
                "method": f"{method} (trl)",
                "policies": len(runs),
                "training per policy (s)": round(sum(p.train_s for p in runs) / len(runs), 1),
                "needed first (s)": f"reward model: {extra[0]:.1f}" if extra else "see the RLHF page",
                "models in memory while training": ", ".join(
                    sorted({f"{p.models_in_memory} (β = {p.beta:g})" for p in runs})
                ),
                "samples answers while training": "yes, every step",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="dpo_cost_table")
    st.caption(
        "Wall times are this server's, measured in this session (steps differ per method: compare per-policy "
        "cost, not per step). KL: summed per-token KL(π ‖ π_ref) on sampled answers, nats per answer."
    )


# -- 5. offline limit ------------------------------------------------------------------------------------


def _kind(pair: dict) -> str:
    """capital / language / continent: which kind of question a pair answers."""
    question = preferences.find_question(pair["prompt"])
    return question.kind if question is not None else "other"


@fragment_unless_running
def offline_tab() -> None:
    covered = st.multiselect(
        "Kinds of question the preference pairs cover",
        preferences.KINDS,
        key="dpo_cover_kinds",
        help="Training uses only the pairs about these kinds of question; every kind is then scored on held-out pairs.",
    )
    urlstate.publish(COVER_SETTINGS)
    if not covered:
        st.info("Pick at least one kind of question for the pairs to cover.", icon="📈")
        return
    settings = _live_settings()
    train, heldout = pairs("train"), pairs("test")
    n_train = sum(_kind(p) in covered for p in train)

    def make_job() -> Job:
        work = dpo.coverage_work(start, train, heldout, settings, _kind, covered, preferences.true_reward)
        return Job("dpo-coverage", work)

    run_panel(
        "dpo_cover",
        make_job,
        lambda job: draw_coverage(job, settings.steps),
        start_label="Train on the covered pairs only",
        idle_message=(
            f"DPO from {START_MODEL} on the {n_train} pairs about {' and '.join(covered)} questions (β = "
            f"{settings.beta:g}, {settings.steps} steps, lr {settings.learning_rate:g}: the Live DPO tab's "
            "settings); then each kind of question is scored on held-out pairs."
        ),
    )


def draw_coverage(job: Job, steps: int) -> None:
    metrics = job.snapshot()
    if job.running and metrics:
        st.caption(f"Step {int(metrics[-1]['step'])} of {steps}")
    outcome = job.result
    if outcome is None:
        return
    reports = outcome.reports
    labels = [f"{r.name} ({'covered' if r.name in outcome.covered else 'not covered'})" for r in reports]
    series = {"pairs ranked right after DPO": [r.accuracy_after for r in reports]}
    if all(r.reward_before is not None for r in reports):
        series = {
            f"right answers, {START_MODEL}": [r.reward_before for r in reports],
            "right answers after DPO": [r.reward_after for r in reports],
            **series,
        }
    st.plotly_chart(
        plots.grouped_bars(
            labels,
            series,
            "Offline data: DPO improves where its pairs reach, and nothing steers it elsewhere",
            "kind of question (held-out pairs)",
            "share of answers or pairs (%)",
        ),
        key="dpo_offline_chart",
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "questions": label,
                    "pairs ranked right": f"{r.accuracy_after:.0%}",
                    "right answers (sampled)": ""
                    if r.reward_after is None
                    else f"{r.reward_before:.0%} → {r.reward_after:.0%}",
                    "KL to the reference (nats)": round(r.kl, 2),
                }
                for label, r in zip(labels, reports, strict=True)
            ]
        ),
        hide_index=True,
        key="dpo_offline_table",
    )
    st.caption(
        "Pairs ranked right: 50% is chance (the start model ties every pair). DPO learns from the fixed pairs "
        "only: it never samples and scores its own answers, so where the pairs do not reach it gets no signal, "
        "and the drift its updates cause there goes unchecked (compare the KL columns)."
    )


def _live_settings() -> dpo.DPOSettings:
    """The Live DPO tab's β, steps and learning rate (already checked by its widgets)."""
    return dpo.DPOSettings(
        beta=float(st.session_state.get(BETA.key, DEFAULTS.beta)),
        steps=int(st.session_state.get(STEPS.key, DEFAULTS.steps)),
        learning_rate=float(st.session_state.get(LR.key, DEFAULTS.learning_rate)),
    )


# -- 6. single annotator ---------------------------------------------------------------------------------


@fragment_unless_running
def annotator_tab() -> None:
    biased = pairs("train", biased=True)
    agreement = preferences.label_agreement(biased)
    st.markdown(
        f"Two labellers see the same {len(biased)} answer pairs. **Many annotators** (the unbiased set) pick the "
        f"right answer. **One annotator** always picks the *longer* one (polite padding makes answers longer), "
        f"so only {agreement:.0%} of that annotator's picks are the right answer."
    )
    settings = _live_settings()
    labellers = {"many annotators (right answer wins)": pairs("train"), "one annotator (longer wins)": biased}

    def make_job() -> Job:
        work = dpo.annotator_work(start, labellers, pairs("test"), settings, preferences.true_reward)
        return Job("dpo-annotator", work)

    run_panel(
        "dpo_annot",
        make_job,
        lambda job: draw_annotator(job, settings.steps),
        start_label="Train on each labeller",
        idle_message=(
            f"Two DPO runs from {START_MODEL} with the Live DPO tab's settings (β = {settings.beta:g}, "
            f"{settings.steps} steps, lr {settings.learning_rate:g}), one per labeller; then each policy answers "
            "the held-out questions."
        ),
    )


def draw_annotator(job: Job, steps: int) -> None:
    metrics = job.snapshot()
    if job.running and metrics:
        st.caption(f"Labeller {int(metrics[-1]['labeller']) + 1} of 2: step {int(metrics[-1]['step'])} of {steps}")
    results = job.result or []
    if len(results) < 2:
        return
    st.plotly_chart(
        plots.grouped_bars(
            ["prefers the right answer", "prefers the longer answer"],
            {r.name: [r.agrees_right, r.agrees_longer] for r in results},
            "Whose taste did the policy learn? Held-out pairs ranked by its implicit reward",
            "rule",
            "held-out pairs (%)",
        ),
        key="dpo_annot_chart",
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "policy": r.name,
                    "prefers the right answer": f"{r.agrees_right:.0%}",
                    "prefers the longer answer": f"{r.agrees_longer:.0%}",
                    "right answers (sampled)": "" if r.reward is None else f"{r.reward:.0%}",
                    "example answer": r.examples[0] if r.examples else "",
                }
                for r in results
            ]
        ),
        hide_index=True,
        key="dpo_annot_table",
    )
    st.caption(
        "The start model ties every pair (50%). Trained on one annotator's picks, the policy ranks new pairs by that "
        "annotator's rule, length, not by what is right: the quirk is now part of the model."
    )


# -- the page ----------------------------------------------------------------------------------------------


def demo() -> None:
    restore_settings()
    st.caption(
        f"Every demo trains **{START_MODEL}** (the SFT stage's output, {start.n_params / 1e6:.2f} M parameters), "
        "whatever the sidebar model, so a run takes seconds; the preference pairs are the RLHF page's."
    )
    demo_tabs(
        "dpo",
        [
            ("The loss", loss_tab),
            ("Live DPO", live_tab),
            ("β sweep", sweep_tab),
            ("DPO vs RLHF", frontier_tab),
            ("Offline limit", offline_tab),
            ("Single annotator", annotator_tab),
            # the RLHF page's room votes: one store, one voter id per browser tab
            ("Vote as a room", lambda: crowd_tab("dpo_crowd", start)),
        ],
    )


with demo_area:
    demo()
