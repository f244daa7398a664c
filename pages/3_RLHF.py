"""RLHF: the card beside its three stages, live on the bundled models. Compute lives in llmlab/reward.py
and llmlab/rlhf.py; preference data in llmlab/preferences.py.

0. The pipeline: SFT model -> reward model -> RL policy, each with its live state in this session.
1. Reward model: trl's RewardTrainer on preference pairs (unbiased or length-loving labels), live; held-out
   score histogram; a box that scores two typed answers.
2. KL sweep: the exact optimum π* ∝ π_ref·exp(r/β) over K sampled answers, β on a log slider (instant).
3. Online RL: trl's RLOOTrainer from a copy of tiny-sft with a KL coefficient, several β side by side.
4. Vote as a room (ui/crowd_train.py): attendees judge answer pairs; the presenter trains on their votes.

    streamlit run app.py   # then "3 · RLHF"; settings round-trip through ?rl_beta=0.1&rl_kl=0.05&rl_steps=30
"""

import streamlit as st

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import lesson_layout
from ui.shell import begin_page, show_advanced

TRY_IT = {
    "rlhf-q1": "tab 2: drag β from 1000 to 0.001 and watch KL and reward; tab 3: run β = 0 beside β = 0.5.",
    "rlhf-q2": "tab 2 with the biased reward model: as β → 0, π* moves to long, padded answers.",
    "rlhf-q3": "tab 1: train on 16 pairs instead of 768 and compare the held-out accuracy. Vote as a room: "
    "choosing the better answer is easy (the card's 'hard to demonstrate, easy to choose'); train the reward "
    "model on the room's few votes and compare it with the same run on shipped pairs.",
    "rlhf-q4": "tab 1 with biased labels, then tab 3 with that reward model: the policy amplifies the bias.",
}
model_slot = begin_page("RLHF", "⚖️")
demo_area = lesson_layout("rlhf", TRY_IT)

# The card is on screen now. The demo's imports (torch, transformers, trl: seconds on a fresh server) follow.
import html
import math

import pandas as pd

from llmlab import plots, preferences, reward, rlhf
from llmlab.jobs import Job
from llmlab.modeling import DEFAULT_MODEL, bundled_models
from ui import urlstate
from ui.crowd_train import crowd_tab
from ui.frame import demo_tabs, page_frame, shared_model
from ui.runs import current_job, run_panel
from ui.text import md_escape

POLICY = "tiny-sft" if "tiny-sft" in bundled_models() else DEFAULT_MODEL
BETAS = tuple(float(f"{10 ** (k / 10):.3g}") for k in range(-30, 31))  # 1e-3 … 1e3, 10 steps per decade
RL_BETAS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0, 10.0)
RM_UNBIASED, RM_BIASED, RM_SESSION, CORRECTNESS = (
    "reward model trained on unbiased pairs",
    "reward model trained on biased pairs (longer wins)",
    "your reward model (tab 1)",
    "correctness (verifiable, no reward model)",
)
RM_DEFAULTS = reward.RewardRunConfig()
SWEEP_QUESTION = "Where is Mexico?"  # the SFT model is right; the biased reward model prefers padded wrong answers
RL_DEFAULTS = rlhf.RLRunConfig()

PROPOSAL_TEMPERATURES = (0.7, 1.0, 1.3, 1.6, 2.0)
N_TRAIN_PAIRS = len(preferences.preference_pairs(0, False, "train"))  # the same count with biased labels
SWEEP_QUESTIONS = tuple(q.text for q in preferences.questions("train") + preferences.questions("unseen"))
SCORE_QUESTIONS = tuple(q.text for q in preferences.all_questions())

# Every setting round-trips through the URL; widgets take their value from these keys. Presenter mode hides the
# advanced ones (learning rates, the sweep's K and proposal temperature); their values still apply.
RM_BIASED_LABELS = urlstate.Param("rl_rm_biased", False)
RM_STEPS = urlstate.Param("rl_rm_steps", RM_DEFAULTS.max_steps, lo=10, hi=400)
RM_LR = urlstate.Param("rl_rm_lr", RM_DEFAULTS.learning_rate, choices=LEARNING_RATES)
RM_PAIRS = urlstate.Param("rl_rm_pairs", N_TRAIN_PAIRS, lo=8, hi=N_TRAIN_PAIRS)
SCORE_QUESTION = urlstate.Param("rl_score_question", SCORE_QUESTIONS[0], choices=SCORE_QUESTIONS)
SWEEP_QUESTION_P = urlstate.Param("rl_sweep_question", SWEEP_QUESTION, choices=SWEEP_QUESTIONS)
SWEEP_REWARD = urlstate.Param("rl_sweep_reward", RM_BIASED, choices=(RM_UNBIASED, RM_BIASED, RM_SESSION))
SWEEP_K = urlstate.Param("rl_sweep_k", 32, lo=4, hi=64)
SWEEP_TEMPERATURE = urlstate.Param("rl_sweep_temperature", 1.0, choices=PROPOSAL_TEMPERATURES)
SWEEP_REWRITES = urlstate.Param("rl_sweep_rewrites", True)
SWEEP_BETA = urlstate.Param("rl_beta", 0.1, choices=BETAS)
RL_REWARD = urlstate.Param("rl_online_reward", RM_BIASED, choices=(RM_UNBIASED, RM_BIASED, RM_SESSION, CORRECTNESS))
RL_COMPARE = urlstate.Param("rl_online_compare", (0.0,), choices=RL_BETAS)
RL_KL = urlstate.Param("rl_kl", RL_DEFAULTS.beta, choices=RL_BETAS)
RL_STEPS = urlstate.Param("rl_steps", RL_DEFAULTS.max_steps, lo=5, hi=200)
RL_LR = urlstate.Param("rl_lr", RL_DEFAULTS.learning_rate, choices=LEARNING_RATES)
SETTINGS = (
    *(RM_BIASED_LABELS, RM_STEPS, RM_LR, RM_PAIRS, SCORE_QUESTION),
    *(SWEEP_QUESTION_P, SWEEP_REWARD, SWEEP_K, SWEEP_TEMPERATURE, SWEEP_REWRITES, SWEEP_BETA),
    *(RL_REWARD, RL_COMPARE, RL_KL, RL_STEPS, RL_LR),
)

loaded = page_frame(model_slot)
sft = shared_model(POLICY, loaded.device)


def help_of(config: type, name: str) -> str:
    """A config field's help text: the slider says exactly what the code's field says."""
    return config.__dataclass_fields__[name].metadata.get("help", "")


def fmt(x: float) -> str:
    return f"{x:g}"


@st.cache_resource(show_spinner="Loading the reward model (bundled, or trained once and cached on disk)…")
def default_reward_model(policy: str, device: str, biased: bool) -> reward.RewardRun:
    """The reward model the sweep and RL use by default: shared, read-only, trained once per server."""
    return reward.load_or_train_reward_model(shared_model(policy, device), reward.RewardRunConfig(biased=biased))


def session_reward_model() -> reward.RewardRun | None:
    """The reward model trained in tab 1 of this session, once its run has finished."""
    job = current_job("rl_rm")
    if job is not None and not job.running and isinstance(job.result, reward.RewardRun):
        return job.result
    return None


def reward_options(with_correctness: bool = False) -> list[str]:
    options = [RM_UNBIASED, RM_BIASED] + ([RM_SESSION] if session_reward_model() is not None else [])
    return options + ([CORRECTNESS] if with_correctness else [])


def reward_model_for(choice: str) -> reward.RewardRun | None:
    if choice == RM_SESSION:
        return session_reward_model()
    if choice == CORRECTNESS:
        return None
    return default_reward_model(POLICY, sft.device, choice == RM_BIASED)


def _repair_state() -> None:
    """Values put in session state from outside the widgets (a URL, a stale session) must not crash them."""
    for param, options in (
        *((p, p.choices) for p in (SWEEP_BETA, RL_KL, RL_LR, RM_LR, SWEEP_TEMPERATURE)),
        (SWEEP_REWARD, reward_options()),  # "your reward model" only once tab 1 has trained one
        (RL_REWARD, reward_options(with_correctness=True)),
    ):
        if st.session_state.get(param.key) not in options:
            if param.key in st.query_params and st.session_state.get(param.key) == RM_SESSION:
                st.toast(
                    f"'{param.key}' asks for {RM_SESSION}, but this session has not trained one yet (tab 1): "
                    f"using {param.default}.",
                    icon="🔗",
                )
            st.session_state[param.key] = param.default


def setting(param: urlstate.Param):
    """A setting's current value, whether or not its widget was drawn (presenter mode hides the advanced ones)."""
    return st.session_state[param.key]


def learning_rate_slider(column, param: urlstate.Param, config: type) -> float:
    """An advanced control: drawn unless presenter mode hides it; its value (from the URL or the slider) either way."""
    if show_advanced():
        column.select_slider(
            "Learning rate", LEARNING_RATES, key=param.key, format_func=fmt, help=help_of(config, "learning_rate")
        )
    return setting(param)


# -- 0. the pipeline ----------------------------------------------------------------------------------------


def _stage_states() -> list[tuple[str, str, str]]:
    """(title, state line, colour) per stage, from this session's jobs."""
    sft_line = f"{POLICY} (bundled; trained by scripts/train_sft.py)"
    rm_job, rl_job = current_job("rl_rm"), current_job("rl_online")
    if rm_job is None:
        rm_line, rm_color = "not trained in this session:\ntabs 2-3 use the server's reward models", "#eeeeee"
    elif rm_job.running:
        step = rm_job.metrics[-1].get("step", 0) if rm_job.metrics else 0
        rm_line, rm_color = f"training… step {step:g}", "#fde2c4"
    elif session_reward_model() is not None:
        run = session_reward_model()
        labels = "biased" if run.config.biased else "unbiased"
        rm_line = f"trained on {labels} pairs\nheld-out accuracy {run.heldout.accuracy:.0%}"
        rm_color = "#d4ecd0"
    else:
        rm_line, rm_color = f"run {rm_job.status}: nothing kept", "#f6d0d0"
    if rl_job is None:
        rl_line, rl_color = "not run in this session", "#eeeeee"
    elif rl_job.running:
        last = rl_job.metrics[-1] if rl_job.metrics else {}
        rl_line = f"training… β = {last.get('beta', 0):g}, step {last.get('step', 0):g}"
        rl_color = "#fde2c4"
    elif rl_job.status in ("done", "stopped") and rl_job.metrics:
        last = rl_job.metrics[-1]
        rl_line = f"{rl_job.status}: last β = {last['beta']:g}\nKL {last.get('kl_seq', 0):.2f} nats, length {last.get('completions/mean_length', 0):.0f} tokens"
        rl_color = "#d4ecd0"
    else:
        rl_line, rl_color = f"run {rl_job.status}", "#f6d0d0"
    return [
        ("1 · SFT model (π_ref)", sft_line, "#d4ecd0"),
        ("2 · Reward model", rm_line, rm_color),
        ("3 · RL policy (KL-penalised)", rl_line, rl_color),
    ]


def pipeline_dot(stages: list[tuple[str, str, str]]) -> str:
    """Graphviz DOT for the three stages; labels are HTML-escaped (our own text, but keep it safe)."""
    nodes = []
    for n, (title, line, color) in enumerate(stages):
        label = f"<<b>{html.escape(title)}</b><br/>{'<br/>'.join(html.escape(p) for p in line.split(chr(10)))}>"
        nodes.append(f'  s{n} [label={label}, fillcolor="{color}"];')
    return "\n".join(
        [
            "digraph rlhf {",
            '  rankdir=TB; nodesep=0.3; ranksep=0.35; node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=14];',
            '  edge [fontname="sans-serif"];',
            *nodes,
            '  s0 -> s1 [label="answers to compare", fontsize=11];',
            '  s1 -> s2 [label="reward r(x, y)", fontsize=11];',
            '  s0 -> s2 [label="start + KL anchor", fontsize=9, style=dashed];',
            "}",
        ]
    )


def pipeline() -> None:
    with st.container():
        st.graphviz_chart(pipeline_dot(_stage_states()))
        st.caption(
            f"This page always starts from {POLICY}, the SFT stage, whatever model the sidebar picks: the "
            "reward model and the RL policy are copies of it."
        )


# -- 1. reward model ----------------------------------------------------------------------------------------


def reward_tab() -> None:
    st.markdown(
        f"A copy of **{md_escape(POLICY)}** gets a one-number head and learns from pairs "
        "(question, chosen answer, rejected answer) with the card's loss −log σ(score_chosen − score_rejected), "
        "using trl's `RewardTrainer`. Each held-out pair pits a question's right answer against a wrong answer "
        "that no training pair contains."
    )
    biased = st.toggle(
        "Biased labels: the longer answer wins",
        key=RM_BIASED_LABELS.key,
        help=help_of(reward.RewardRunConfig, "biased"),
    )
    c2, c3, c4 = st.columns(3)
    steps = c2.slider("Steps", 10, 400, step=10, key=RM_STEPS.key, help=help_of(reward.RewardRunConfig, "max_steps"))
    lr = learning_rate_slider(c3, RM_LR, reward.RewardRunConfig)
    n_pairs = c4.slider(
        "Training pairs", RM_PAIRS.lo, RM_PAIRS.hi, step=8, key=RM_PAIRS.key,
        help=help_of(reward.RewardRunConfig, "train_pairs"),
    )  # fmt: skip
    rows = preferences.preference_pairs(0, biased, "train")
    with st.expander(f"The preference pairs ({len(rows)} train, biased={biased})"):
        agreement = preferences.label_agreement(rows)
        st.caption(f"{agreement:.0%} of these labels pick the correct answer.")
        st.dataframe(
            pd.DataFrame([{"question": preferences.question_text(r["prompt"]), **r} for r in rows[:40]]).drop(
                columns="prompt"
            ),
            hide_index=True,
        )
    cfg = reward.RewardRunConfig(max_steps=int(steps), learning_rate=float(lr), train_pairs=int(n_pairs), biased=biased)
    run_panel(
        "rl_rm",
        lambda: Job("rl-reward-model", lambda job: reward.train_reward_model(sft, cfg, job)),
        draw_reward_run,
        start_label="Train reward model",
        idle_message=f"Press Train reward model to train one live ({RM_DEFAULTS.max_steps} steps by default).",
    )
    st.markdown("#### Score two answers")
    score_box()
    with st.expander("Show the code"):
        st.code(
            """model = AutoModelForSequenceClassification.from_pretrained("models/tiny-sft", num_labels=1)
model.config.pad_token_id = tokenizer.pad_token_id
for part in [model.transformer.wte, model.transformer.wpe, *model.transformer.h[:2]]:
    part.requires_grad_(False)   # embeddings + the lowest 2 of 4 blocks keep SFT's weights: ~1.5x faster
trainer = RewardTrainer(model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(pairs),
                        args=RewardConfig(max_steps=80, learning_rate=2e-3, per_device_train_batch_size=16, ...),
                        optimizers=(AdamW([{"params": body, "lr": 2e-3}, {"params": head, "lr": 2e-2}]), None))
trainer.train()          # loss = -logsigmoid(score_chosen - score_rejected).mean()  (trl's compute_loss)
score = model(**tokenizer(prompt + answer + eos, return_tensors="pt")).logits[0, 0]""",
            language="python",
        )


def draw_reward_run(job: Job) -> None:
    rows = job.snapshot()
    train = [r for r in rows if "loss" in r]
    held = [r for r in rows if "heldout_accuracy" in r]
    if not train:
        st.caption("Preparing the data set…")
        return
    steps = [r["step"] for r in train]
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        plots.metric_lines(
            {
                "training batch (trl's loss)": (steps, [r["loss"] for r in train]),
                "held-out pairs": ([r["step"] for r in held], [r["heldout_loss"] for r in held]),
            },
            "Bradley–Terry loss −log σ(s_chosen − s_rejected)",
            "training step",
            "loss (nats per pair)",
        ),  # fmt: skip
        key="rl_rm_loss_chart",
    )
    c2.plotly_chart(
        plots.metric_lines(
            {
                "training batch": (steps, [r.get("accuracy", math.nan) for r in train]),
                "held-out pairs": ([r["step"] for r in held], [r["heldout_accuracy"] for r in held]),
            },
            "Pairwise accuracy: chosen scored above rejected",
            "training step",
            "pairs ranked right (%)",
            percent=True,
        ),  # fmt: skip
        key="rl_rm_accuracy_chart",
    )
    c1.plotly_chart(
        plots.metric_lines(
            {"margin": (steps, [r.get("margin", math.nan) for r in train])},
            "Margin s_chosen − s_rejected (training batch)",
            "training step",
            "score difference (logit units)",
        ),  # fmt: skip
        key="rl_rm_margin_chart",
    )
    notes = [n for n in list(job.notes) if "chosen" in n]
    if notes:
        last = notes[-1]
        c2.plotly_chart(
            plots.score_histogram(
                last["chosen"], last["rejected"], f"Held-out scores at step {last['step']:g}: chosen vs rejected"
            ),
            key="rl_rm_histogram",
        )
    if isinstance(job.result, reward.RewardRun):
        run = job.result
        m1, m2, m3 = st.columns(3)
        m1.metric("Held-out accuracy (its own labels)", f"{run.heldout.accuracy:.0%}")
        m2.metric("Held-out accuracy vs correctness", f"{run.heldout_true.accuracy:.0%}",
                  help="The same held-out answers, labelled by which one is right.")  # fmt: skip
        m3.metric("Held-out margin", f"{run.heldout.margin:.2f}", help="mean s_chosen − s_rejected, logit units")
        if run.config.biased:
            st.warning(
                "This reward model learned the biased labels: it ranks the *longer* answer higher, right or "
                "wrong. Use it in tabs 2 and 3 to watch a policy exploit it.",
                icon="⚖️",
            )


def score_box() -> None:
    questions = {q.text: q for q in preferences.all_questions()}
    question = st.selectbox("Question", list(questions), key=SCORE_QUESTION.key)
    q = questions[question]
    st.session_state.setdefault("rl_score_a", preferences.answer_text(q, q.answer))
    st.session_state.setdefault("rl_score_b", preferences.padded(preferences.wrong_answers(q)[1], 1))
    c1, c2 = st.columns(2)
    answer_a = c1.text_area("Answer A", key="rl_score_a", height=80, max_chars=600)
    answer_b = c2.text_area("Answer B", key="rl_score_b", height=80, max_chars=600)
    if not answer_a.strip() or not answer_b.strip():
        st.info("Type both answers to see how each reward model scores them.", icon="✍️")
        return
    rows = []
    for choice in reward_options():
        run = reward_model_for(choice)
        s = reward.score(run.model, run.tokenizer, [q.prompt] * 2, [answer_a, answer_b]).tolist()
        rows.append(
            {
                "reward model": choice,
                "score A": round(s[0], 3),
                "score B": round(s[1], 3),
                "P(A preferred) = σ(A − B)": f"{1 / (1 + math.exp(-(s[0] - s[1]))):.1%}",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    correct = [preferences.true_reward(q.prompt, a) for a in (answer_a, answer_b)]
    st.caption(
        f"Correct? A: {'yes' if correct[0] else 'no'}, B: {'yes' if correct[1] else 'no'} "
        f"(the right answer is {md_escape(q.answer)}). Scores are in logit units: only differences mean anything."
    )


# -- 2. the exact KL sweep ----------------------------------------------------------------------------------


@st.cache_resource(max_entries=64, show_spinner="Sampling answers and scoring them (once per question)…")
def cached_sweep(
    policy: str, device: str, reward_choice: str, _reward: reward.RewardRun, reward_id: int,
    question: str, k: int, temperature: float, rewrites: bool,
) -> tuple[rlhf.Candidates, rlhf.Frontier]:  # fmt: skip
    """Candidates (π_ref log-probs, rewards) and the frontier, once per prompt: a β change calls no model.
    Raises RLInputError (e.g. NaN scores from a diverged reward model)."""
    shared = shared_model(policy, device)
    cands = rlhf.sample_candidates(
        shared.model, shared.tokenizer, _reward.model, preferences.chat_prompt(question),
        k=k, temperature=temperature, padded_rewrites=rewrites,
    )  # fmt: skip
    return cands, rlhf.frontier(cands, rlhf.beta_grid(121))


def sweep_figures(key: tuple, cands: rlhf.Candidates, curve: rlhf.Frontier) -> tuple:
    """The two sweep figures, built once per session and candidate set. A β move only updates them in place:
    building a plotly figure costs ~50 ms, which would spend the slider's whole budget."""
    kept = st.session_state.get("_rl_sweep_figures")
    if kept is None or kept[0] != key:
        bars = plots.policy_bars([], [], [], "")
        frontier = plots.kl_sweep_frontier(
            curve.kl, curve.expected_proxy, curve.expected_true, (0.0, 0.0, 0.0),
            "Reward vs KL frontier, β from 1000 (left) to 0.001 (right)",
        )  # fmt: skip
        kept = st.session_state["_rl_sweep_figures"] = (key, bars, frontier)
    return kept[1], kept[2]


@st.fragment
def sweep_tab() -> None:
    st.markdown(
        "Sample K answers from the SFT model π_ref, score them once, and the best policy over those answers for "
        "max E[r] − β·KL(π‖π_ref) is exact: **π\\*(y) ∝ π_ref(y)·exp(r(y)/β)**. No training, so β moves instantly."
    )
    c1, c2 = st.columns(2)
    question = c1.selectbox("Question", SWEEP_QUESTIONS, key=SWEEP_QUESTION_P.key)
    choice = c2.radio("Reward model", reward_options(), key=SWEEP_REWARD.key, horizontal=False)
    c3, c4, c5 = st.columns(3)
    if show_advanced():
        c3.slider("Samples K", SWEEP_K.lo, SWEEP_K.hi, step=4, key=SWEEP_K.key, help="Answers sampled from π_ref.")
        c4.select_slider(
            "Proposal temperature", PROPOSAL_TEMPERATURES, key=SWEEP_TEMPERATURE.key,
            help="Only widens which answers are proposed; π_ref(y) is always the model's own probability.",
        )  # fmt: skip
    k, temperature = setting(SWEEP_K), setting(SWEEP_TEMPERATURE)
    rewrites = c5.toggle(
        "Add padded rewrites", key=SWEEP_REWRITES.key,
        help="Each sampled answer also wrapped in polite padding: what an RL policy could drift to.",
    )  # fmt: skip
    beta = st.select_slider(
        "β, the KL coefficient (log scale)", BETAS, key=SWEEP_BETA.key, format_func=fmt,
        help="Small β: chase the reward. Large β: stay with π_ref.",
    )  # fmt: skip
    urlstate.publish(SETTINGS)
    run = reward_model_for(choice)
    key = (POLICY, sft.device, choice, id(run), question, k, temperature, rewrites)
    try:
        cands, curve = cached_sweep(*key[:3], run, *key[3:])
        point = rlhf.sweep_point(cands, beta)
    except rlhf.RLInputError as err:
        st.error(str(err), icon="⚠️")
        return
    if len(cands.texts) == 1:
        st.info(
            "All K samples are the same answer, so π* = π_ref at every β (KL 0). Raise the proposal temperature "
            "or add padded rewrites to give the optimum a choice.",
            icon="ℹ️",
        )
    ref = cands.ref_policy
    m = st.columns(5)
    m[0].metric("KL (nats)", f"{point.kl:.3g}", help="KL(π* ‖ π_ref) over the candidates, nats per answer")
    m[1].metric("RM score", f"{point.expected_proxy:.2f}", f"{point.expected_proxy - ref @ cands.proxy:+.2f}",
                help="E_π*[reward-model score], logit units; the delta is vs π_ref")  # fmt: skip
    m[2].metric("Correct", f"{point.expected_true:.0%}", f"{point.expected_true - ref @ cands.true:+.0%}",
                help="P_π*(answer is right): the true reward; the delta is vs π_ref")  # fmt: skip
    m[3].metric("Length", f"{point.expected_length:.1f}", help="E_π*[answer length], tokens")
    m[4].metric("Polite", f"{point.expected_padding:.2f}", help="E_π*[polite phrases per answer]")
    order = sorted(range(len(cands.texts)), key=lambda i: -max(ref[i], point.policy[i]))[:12]
    bars, frontier = sweep_figures(key, cands, curve)
    plots.update_policy_bars(
        bars,
        [("✓ " if cands.true[i] else "✗ ") + cands.texts[i] for i in order],
        [ref[i] for i in order],
        [point.policy[i] for i in order],
        f"π_ref vs π* at β = {beta:g} ({len(cands.texts)} distinct answers, top {len(order)} shown)",
    )
    plots.move_frontier_marker(frontier, point.kl, point.expected_proxy, point.expected_true)
    st.plotly_chart(bars, key="rl_sweep_bars")
    st.plotly_chart(frontier, key="rl_sweep_frontier")
    # grid[0] is β = 0.001, grid[-1] is β = 1000 (= π_ref)
    worst = int(curve.expected_true.argmin())
    if curve.expected_true[worst] < curve.expected_true[-1] - 0.05:
        verdict = (
            f"Chasing the score costs correctness: at β = {curve.betas[worst]:.3g} the optimum is right "
            f"{curve.expected_true[worst]:.0%} of the time, against {curve.expected_true[-1]:.0%} for π_ref, while "
            f"its reward-model score is {curve.expected_proxy[worst]:.2f} against {curve.expected_proxy[-1]:.2f}: "
            "reward hacking, which only the KL penalty holds back."
        )
    else:
        verdict = "Here no β costs correctness; try the biased reward model or another question."
    st.caption(
        f"✓ = correct answer. From β = 1000 to β = 0.001, E[reward-model score] goes {curve.expected_proxy[-1]:.2f} "
        f"→ {curve.expected_proxy[0]:.2f}, correct answers {curve.expected_true[-1]:.0%} → "
        f"{curve.expected_true[0]:.0%}, polite phrases {curve.expected_padding[-1]:.1f} → "
        f"{curve.expected_padding[0]:.1f} per answer. {verdict}"
    )
    with st.expander("Show the code"):
        st.code(
            """logits = ref_logprobs + rewards / beta           # log π_ref(y) + r(y)/β, per candidate
pi_star = np.exp(logits - np.logaddexp.reduce(logits))   # log-sum-exp: no overflow at β = 0.001
kl = np.sum(pi_star * (np.log(pi_star) - np.log(pi_ref)))""",
            language="python",
        )


# -- 3. online RL -------------------------------------------------------------------------------------------


def rl_tab() -> None:
    st.markdown(
        "**How this relates to the card's PPO:** trl 1.16 has no PPOTrainer; `RLOOTrainer` is the same loop "
        "without PPO's value network: each answer's advantage is its reward minus the mean reward of the other "
        "answers to the same question, and β·KL(π‖π_ref) is subtracted from the reward exactly like the card's "
        "`ppo_step(reward, kl_penalty=β)` (GRPOTrainer adds the KL to the loss instead)."
    )
    c1, c2 = st.columns(2)
    choice = c1.radio("Reward", reward_options(with_correctness=True), key=RL_REWARD.key)
    extra = c2.multiselect(
        "Also run, side by side (same seed)", RL_BETAS, key=RL_COMPARE.key, format_func=fmt,
        help="More KL coefficients, each a run of its own after the first; curves share the charts.",
    )  # fmt: skip
    c3, c4, c5 = st.columns(3)
    beta = c3.select_slider(
        "KL coefficient β", RL_BETAS, key=RL_KL.key, format_func=fmt, help=help_of(rlhf.RLRunConfig, "beta")
    )
    steps = c4.slider("Steps", 5, 200, step=5, key=RL_STEPS.key, help=help_of(rlhf.RLRunConfig, "max_steps"))
    lr = learning_rate_slider(c5, RL_LR, rlhf.RLRunConfig)
    urlstate.publish(SETTINGS)
    betas = list(dict.fromkeys([beta, *extra]))
    reward_kind = "correctness" if choice == CORRECTNESS else "reward model"
    configs = [
        rlhf.RLRunConfig(beta=float(b), max_steps=int(steps), learning_rate=float(lr), reward=reward_kind)
        for b in betas
    ]

    def make_job() -> Job:
        run = reward_model_for(choice)
        return Job("rl-online", rlhf.kl_comparison_work(sft, run, configs))

    try:
        for cfg in configs:
            cfg.check()
    except rlhf.RLInputError as err:
        st.error(str(err), icon="⚠️")
        return
    run_panel(
        "rl_online",
        make_job,
        draw_rl_run,
        start_label="Start RL",
        idle_message=f"Press Start RL to train a copy of {POLICY} with RLOO at β = "
        + ", ".join(fmt(b) for b in betas)
        + " (one run after another, same seed).",
    )
    with st.expander("Show the code"):
        st.code(
            """def judge(prompts, completions, **kwargs):            # trl passes dataset columns as kwargs
    return score(reward_model, tokenizer, prompts, completions).tolist()

trainer = RLOOTrainer(model=copy_of_sft, reward_funcs=judge, train_dataset=Dataset.from_list(prompts),
                      args=RLOOConfig(beta=1.0, num_generations=4, per_device_train_batch_size=16,
                                      learning_rate=5e-4, max_completion_length=24, ...))
trainer.train()     # reward − β·Σ log π/π_ref per answer; advantage = reward − mean of the other 3""",
            language="python",
        )


def draw_rl_run(job: Job) -> None:
    rows = job.snapshot()
    if not rows:
        st.caption("Sampling the first answers…")
        return
    betas = list(dict.fromkeys(r["beta"] for r in rows))

    def series(key: str) -> dict:
        return {
            f"β = {b:g}": (
                [r["step"] for r in rows if r["beta"] == b],
                [r.get(key, math.nan) for r in rows if r["beta"] == b],
            )
            for b in betas
        }

    c1, c2 = st.columns(2)
    c1.plotly_chart(
        plots.metric_lines(
            series("rewards/judge/mean"),
            "Mean reward of sampled answers",
            "training step",
            "reward (score units; correctness 0–1)",
        ),  # fmt: skip
        key="rl_online_reward_chart",
    )
    c2.plotly_chart(
        plots.metric_lines(series("kl_seq"), "KL to the SFT model", "training step", "KL(π ‖ π_ref) (nats per answer)"),
        key="rl_online_kl_chart",
    )
    c1.plotly_chart(
        plots.metric_lines(series("completions/mean_length"), "Answer length", "training step", "tokens per answer"),
        key="rl_online_length_chart",
    )
    c2.plotly_chart(
        plots.metric_lines(
            series("true_reward"),
            "Correct answers (true reward)",
            "training step",
            "share of sampled answers that are right",
            percent=True,
        ),  # fmt: skip
        key="rl_online_true_chart",
    )
    summary = []
    for b in betas:
        end = rlhf.final_metrics([r for r in rows if r["beta"] == b])
        summary.append(
            {
                "β": fmt(b),
                "steps": int(max(r["step"] for r in rows if r["beta"] == b)),
                "reward (last 5 steps)": round(end["rewards/judge/mean"], 3),
                "correct": f"{end['true_reward']:.0%}",
                "KL (nats/answer)": round(end["kl_seq"], 3),
                "length (tokens)": round(end["completions/mean_length"], 1),
                "polite phrases": round(end["padding"], 2),
            }
        )
    st.markdown("**Side by side** (mean of each run's last 5 steps)")
    st.dataframe(pd.DataFrame(summary), hide_index=True)
    samples = [n for n in list(job.notes) if "samples" in n]
    if samples:
        st.markdown("**Sampled answers at checkpoints**")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "β": fmt(n["beta"]),
                        "step": n["step"],
                        "question": preferences.question_text(p),
                        "answer": a,
                        "reward": round(r, 3),
                        "correct": "✓" if t else "✗",
                    }
                    for n in samples
                    for p, a, r, t in n["samples"]
                ]
            ),
            hide_index=True,
        )


# -- the page -------------------------------------------------------------------------------------------------


def demo() -> None:
    urlstate.restore(SETTINGS, "rl_")
    _repair_state()
    stages = st.empty()  # drawn last, so it shows the runs the buttons below just started or reset
    demo_tabs(
        "rlhf",
        [
            ("1 · Reward model", reward_tab),
            ("2 · KL sweep (exact, instant)", sweep_tab),
            ("3 · Online RL (live)", rl_tab),
            ("Vote as a room", lambda: crowd_tab("rl_crowd", sft)),
        ],
    )
    with stages:
        pipeline()


with demo_area:
    demo()
