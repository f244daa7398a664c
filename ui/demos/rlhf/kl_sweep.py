"""2 · KL sweep: sample K answers from the SFT model π_ref and score them once; the best policy over those answers
for max E[r] − β·KL(π‖π_ref) is exact, π*(y) ∝ π_ref(y)·exp(r(y)/β) (llmlab.rlhf.optimum_at), so the β slider
moves instantly: no model call, and no figure rebuilt (the kept figures' bars and marker move)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from llmlab import plots, preferences, reward, rlhf
from llmlab.modeling import LoadedModel
from ui.demos.rlhf.reward_models import RM_BIASED, RM_SESSION, RM_UNBIASED, reward_model_for, reward_options
from ui.frame import chart
from ui.models import shared_model, start_model
from ui.runs import kept_figure
from ui.settings import RADIO, SettingsForm, option

QUESTIONS = tuple(q.text for q in preferences.questions("train") + preferences.questions("unseen"))
PROPOSAL_TEMPERATURES = (0.7, 1.0, 1.3, 1.6, 2.0)
SHOWN_ANSWERS = 12  # bars: the answers most likely under π_ref or π*
CODE = """logits = ref_logprobs + rewards / beta           # log π_ref(y) + r(y)/β, per candidate
pi_star = np.exp(logits - np.logaddexp.reduce(logits))   # log-sum-exp: no overflow at β = 0.001
kl = np.sum(pi_star * (np.log(pi_star) - np.log(pi_ref)))"""


@dataclass(frozen=True)
class SweepSettings:
    # The SFT model is right about Mexico; the biased reward model prefers padded wrong answers.
    question: str = option("Question", "Where is Mexico?", choices=QUESTIONS)
    # "your reward model" is a choice once the reward-model tab has trained one: the form gets reward_options()
    reward: str = option("Reward model", RM_BIASED, choices=(RM_UNBIASED, RM_BIASED, RM_SESSION), widget=RADIO)
    k: int = option("Samples K", 32, lo=4, hi=64, step=4, advanced=True, help="Answers sampled from π_ref.")
    temperature: float = option(
        "Proposal temperature", 1.0, choices=PROPOSAL_TEMPERATURES, advanced=True,
        help="Only widens which answers are proposed; π_ref(y) is always the model's own probability.",
    )  # fmt: skip
    rewrites: bool = option(
        "Add padded rewrites", True,
        help="Each sampled answer also wrapped in polite padding: what an RL policy could drift to.",
    )  # fmt: skip
    beta: float = option(
        "β, the KL coefficient (log scale)", 0.1, choices=rlhf.SWEEP_BETAS,
        help="Small β: chase the reward. Large β: stay with π_ref.",
    )  # fmt: skip


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


def draw(loaded: LoadedModel) -> None:
    st.markdown(
        "Sample K answers from the SFT model π_ref, score them once, and the best policy over those answers for "
        "max E[r] − β·KL(π‖π_ref) is exact: **π\\*(y) ∝ π_ref(y)·exp(r(y)/β)**. No training, so β moves instantly."
    )
    sft = start_model(loaded.device)
    form = SettingsForm(SweepSettings, "rl_sweep_", choices={"reward": reward_options()})
    for name, column in zip(
        ("question", "reward", "k", "temperature", "rewrites"), [*st.columns(2), *st.columns(3)], strict=True
    ):
        form.widget(name, column)
    form.widget("beta")
    s = form.done()
    run = reward_model_for(s.reward, sft.name, sft.device)
    version = (sft.name, sft.device, s.reward, id(run), s.question, s.k, s.temperature, s.rewrites)
    try:
        cands, curve = cached_sweep(*version[:3], run, *version[3:])
        point = rlhf.optimum_at(cands, s.beta)
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
    order = sorted(range(len(cands.texts)), key=lambda i: -max(ref[i], point.policy[i]))[:SHOWN_ANSWERS]
    # Built once per candidate set and session: building a plotly figure costs ~50 ms, the slider's whole budget.
    bars, frontier = kept_figure("rl_sweep_figures", version, lambda: sweep_figures(curve))
    plots.update_policy_bars(
        bars,
        [("✓ " if cands.true[i] else "✗ ") + cands.texts[i] for i in order],
        [ref[i] for i in order],
        [point.policy[i] for i in order],
        f"π_ref vs π* at β = {s.beta:g} ({len(cands.texts)} distinct answers, top {len(order)} shown)",
    )
    plots.move_frontier_marker(frontier, point.kl, point.expected_proxy, point.expected_true)
    chart(bars, "rl_sweep_bars")
    chart(frontier, "rl_sweep_frontier")
    st.caption(f"✓ = correct answer. {rlhf.frontier_summary(curve)}")
    with st.expander("Show the code"):
        st.code(CODE, language="python")


def sweep_figures(curve: rlhf.Frontier) -> tuple:
    """The policy bars (filled in on every draw) and the frontier with its β marker (moved on every draw)."""
    bars = plots.policy_bars([], [], [], "")
    title = "Reward vs KL frontier, β from 1000 (left) to 0.001 (right)"
    frontier = plots.kl_sweep_frontier(curve.kl, curve.expected_proxy, curve.expected_true, (0.0, 0.0, 0.0), title)
    return bars, frontier
