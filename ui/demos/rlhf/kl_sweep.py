"""2 · KL sweep: sample K answers from the SFT model π_ref and score them once; the best policy over those answers
for max E[r] − β·KL(π‖π_ref) is exact, π*(y) ∝ π_ref(y)·exp(r(y)/β) (llmlab.rlhf.optimum_at), so the β slider
moves in the browser while it is dragged (ui/instant.py, ui/instant/math.js): no model call, no server round trip."""

from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st

from llmlab import plots, preferences, reward, rlhf
from llmlab.modeling import LoadedModel
from ui.demos.rlhf.reward_models import RM_BIASED, RM_SESSION, RM_UNBIASED, reward_model_for, reward_options
from ui.frame import intro, setup
from ui.instant import instant_demo
from ui.models import shared_model, start_model
from ui.settings import RADIO, SettingsForm, option
from ui.text import md_escape

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
    intro(
        "Sample K answers from the SFT model π_ref, score them once, and the best policy over those answers for "
        "max E[r] − β·KL(π‖π_ref) is exact: **π\\*(y) ∝ π_ref(y)·exp(r(y)/β)**. No training, so β moves instantly."
    )
    sft = start_model(loaded.device)
    form = SettingsForm(SweepSettings, "rl_sweep_", choices={"reward": reward_options()})
    shown = f"{form.value('question')} · {form.value('reward').removeprefix('reward model trained on ')}"
    with setup(md_escape(shown)):
        for name, column in zip(
            ("question", "reward", "k", "temperature", "rewrites"), [*st.columns(2), *st.columns(3)], strict=True
        ):
            form.widget(name, column)
    s = form.done()  # (β is set in the browser: a drag's end updates the form before this run)
    run = reward_model_for(s.reward, sft.name, sft.device)
    version = (sft.name, sft.device, s.reward, id(run), s.question, s.k, s.temperature, s.rewrites)
    try:
        cands, curve = cached_sweep(*version[:3], run, *version[3:])
    except rlhf.RLInputError as err:
        st.error(str(err), icon="⚠️")
        return
    if len(cands.texts) == 1:
        st.info(
            "All K samples are the same answer, so π* = π_ref at every β (KL 0). Raise the proposal temperature "
            "or add padded rewrites to give the optimum a choice.",
            icon="ℹ️",
        )
    # β moves the optimum in the browser, while the slider is dragged (ui/instant.py: the same formulas).
    instant_demo("rl_sweep_live", "kl_sweep", form, ["beta"], sweep_payload(cands, curve))
    st.caption(f"✓ = correct answer. {rlhf.frontier_summary(curve)}")
    if s.question == SweepSettings().question and s.reward == RM_BIASED:
        st.caption(
            "How this is set up: the sweep opens on “Where is Mexico?” with the biased reward model because that "
            "shows hacking: tiny-sft answers it right, while the biased reward model scores padded and wrong "
            "answers higher. On other questions, or with the unbiased reward model, small β may change little: "
            "try them. The padded rewrites are template answers the model did not write; the Online RL tab shows "
            "what a policy writes itself."
        )
    with st.expander("Show the code"):
        st.code(CODE, language="python")


def _finite(values) -> list[float]:
    """Numbers for JSON: a log-probability too small for a float becomes -1e300 (JSON has no -Infinity)."""
    return [float(v) if math.isfinite(v) else -1e300 for v in values]


def sweep_payload(cands: rlhf.Candidates, curve: rlhf.Frontier) -> dict:
    """What the browser needs to redraw the sweep at any β: the scored candidates and the β-independent frontier."""
    proxy = [float(p) for p in curve.expected_proxy]
    pad = max(0.5, 0.06 * (max(proxy) - min(proxy)))
    return {
        "candidates": {
            "texts": list(cands.texts),
            "ref_logprobs": _finite(cands.ref_logprobs),
            "proxy": _finite(cands.proxy),
            "true": _finite(cands.true),
            "lengths": _finite(cands.lengths),
            "padding": _finite(cands.padding),
        },
        "frontier": {"kl": _finite(curve.kl), "proxy": proxy, "true": _finite(curve.expected_true)},
        "kl_floor": plots.KL_FLOOR,
        "proxy_range": [min(proxy) - pad, max(proxy) + pad],
        "shown": SHOWN_ANSWERS,
    }
