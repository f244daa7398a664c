"""Over-optimisation (Gao, Schulman, Hilton 2022): best-of-n from the SFT model needs no training (sample n
answers, keep the one the reward model likes best, KL = log n − (n−1)/n), so its proxy and true reward are drawn
against d = √KL at once, with the paper's fit d(α − β·d) and its peak; the session's online-RL runs join the same
axes with the fit d(α − β·log d) (llmlab/overopt.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from llmlab import overopt, plots, reward
from llmlab.modeling import LoadedModel
from ui.demos.rlhf.online_rl import rl_job, trained_against
from ui.demos.rlhf.reward_models import RM_BIASED, RM_SESSION, RM_UNBIASED, reward_model_for, reward_options
from ui.frame import chart, intro, show_code
from ui.models import shared_model, start_model
from ui.settings import RADIO, SettingsForm, option


@dataclass(frozen=True)
class OveroptSettings:
    # The unbiased reward model is the default: its curve has the paper's shape (a rise, then a fall).
    reward: str = option("Reward model (the proxy)", RM_UNBIASED, choices=(RM_UNBIASED, RM_BIASED, RM_SESSION),
                         widget=RADIO)  # fmt: skip
    questions: int = option(
        "Questions", overopt.DEFAULT_QUESTIONS, choices=(12, 24, 48, 96), advanced=True,
        help=f"Each gets {overopt.N_MAX} sampled answers, scored once and cached; more questions, smoother curves.",
    )  # fmt: skip


@st.cache_resource(max_entries=16, show_spinner=f"Sampling {overopt.N_MAX} answers per question and scoring them…")
def cached_curve(
    policy: str, device: str, reward_choice: str, _reward: reward.RewardRun, reward_id: int, questions: int
) -> tuple[overopt.BestOfNCurve, overopt.Fit, overopt.Fit]:
    """The best-of-n curve for n = 1…64 and the fits of its proxy and true reward, once per reward model."""
    shared = shared_model(policy, device)
    pool = overopt.sample_pool(shared, _reward.model, overopt.default_questions(questions))
    curve = overopt.best_of_n_curve(pool)
    return curve, overopt.fit_bon(curve.d, curve.proxy), overopt.fit_bon(curve.d, curve.true)


def draw(loaded: LoadedModel) -> None:
    intro(
        "**Best-of-n** needs no training: sample n answers from the SFT model, keep the one the reward model scores "
        "highest. Its KL from the SFT model is log n − (n−1)/n, so n = 1…64 traces reward against distance at once. "
        "Gao, Schulman & Hilton (2022) plot both rewards against d = √KL: the proxy (the reward model) keeps "
        "rising, while the true reward (here: correctness) peaks and falls: over-optimisation, the card's Q1 and Q2."
    )
    sft = start_model(loaded.device)
    form = SettingsForm(OveroptSettings, "rl_overopt_", choices={"reward": reward_options()})
    for name, column in zip(("reward", "questions"), st.columns(2), strict=True):
        form.widget(name, column)
    s = form.done()
    run = reward_model_for(s.reward, sft.name, sft.device)
    try:
        curve, fit_proxy, fit_true = cached_curve(sft.name, sft.device, s.reward, run, id(run), s.questions)
    except ValueError as err:
        st.error(str(err), icon="⚠️")
        return
    st.caption(
        f"Set-up: {s.questions} of the 96 questions the preference pairs ask, {overopt.N_MAX} answers each sampled from {sft.name} at "
        f"temperature 1 (seed 0), scored by the {s.reward}; correctness is checked against the facts. The "
        "expected best-of-n pick is computed exactly over all n-subsets of the 64 answers, so the curves are "
        "smooth. The default reward model is the unbiased one because its curve shows the paper's shape; with the "
        "biased one, correctness falls from n = 1 on."
    )
    rl = rl_overlay(s.reward)
    grid = np.linspace(0, float(curve.d[-1]) * 1.05, 80)
    labels = [f"n={n}" for n in curve.ns]
    proxy_points = {"best-of-n": (curve.d, curve.proxy, labels)}
    true_points = {"best-of-n": (curve.d, curve.true, labels)}
    proxy_curves = {"fit d(α − βd)": (grid, fit_proxy(grid))}
    true_curves = {"fit d(α − βd)": (grid, fit_true(grid))}
    peaks = []
    if fit_true.peak_d is not None and fit_true.peak_d <= grid[-1]:
        peaks.append(("peak of the fit", fit_true.peak_d, float(fit_true(fit_true.peak_d))))
    for points in rl.points:
        name = f"online RL, β = {points.beta:g}"
        proxy_points[name] = (points.d, points.proxy, [""] * len(points.d))
        true_points[name] = (points.d, points.true, [""] * len(points.d))
    if rl.fit is not None:
        rl_grid = np.linspace(1e-3, max(float(np.max(p.d)) for p in rl.points), 80)
        true_curves["online RL: fit d(α − β·log d)"] = (rl_grid, rl.fit(rl_grid))
        if rl.fit.peak_d is not None and rl.fit.peak_d <= rl_grid[-1]:
            peaks.append(("peak of the RL fit", rl.fit.peak_d, float(rl.fit(rl.fit.peak_d))))
    c1, c2 = st.columns(2)
    chart(plots.overoptimisation_chart(proxy_points, proxy_curves, [], "Proxy: reward-model score",
                                       "mean score of the pick (score units)"), "rl_overopt_proxy", c1)  # fmt: skip
    chart(plots.overoptimisation_chart(true_points, true_curves, peaks, "True reward: correctness",
                                       "share of picks that are right", percent=True), "rl_overopt_true", c2)  # fmt: skip
    st.markdown(overopt.summary(curve, fit_true))
    st.caption(rl.caption)
    st.dataframe(curve_table(curve), hide_index=True)
    st.caption(
        "KL here is the paper's log n − (n−1)/n, which assumes the n answers all differ. This small model repeats "
        "itself (about 7 distinct answers in 64), so the KL measured on the pool (last column) is smaller."
    )
    show_code(overopt.best_of_n_weights, overopt.best_of_n_expectation, overopt.fit_bon, overopt.fit_rl)


@dataclass(frozen=True)
class RLOverlay:
    points: list[overopt.RLPoints]
    fit: overopt.Fit | None
    caption: str


def rl_overlay(reward_choice: str) -> RLOverlay:
    """The session's online-RL runs (tab "Online RL") on the same axes, when they trained against this reward
    model; otherwise a caption saying how to add them."""
    job = rl_job()
    if job is None or not job.snapshot():
        return RLOverlay([], None, "Run online RL (tab 3) with this reward model to add its steps to these charts.")
    if trained_against(job) != reward_choice:
        return RLOverlay(
            [], None, f"The session's online-RL runs trained against another reward ({trained_against(job)}); "
            "run them with this one to compare them here."
        )  # fmt: skip
    points = overopt.rl_points(job.snapshot())
    d = np.concatenate([p.d for p in points]) if points else np.zeros(0)
    true = np.concatenate([p.true for p in points]) if points else np.zeros(0)
    fit = overopt.fit_rl(d, true) if np.count_nonzero(d > 0) >= 2 else None
    caption = (
        "Online RL points: that run's answers to the training questions, d from its own KL estimate, five steps per "
        "point (the first point is the start policy, d = 0)."
    )
    if fit is not None:
        caption += f" Fit to their correctness: α = {fit.alpha:.3f}, β = {fit.beta:.3f}, " + (
            f"peak at d ≈ {fit.peak_d:.2f}." if fit.peak_d is not None else "no peak at d > 0."
        )
    return RLOverlay(points, fit, caption)


def curve_table(curve: overopt.BestOfNCurve) -> list[dict]:
    return [
        {
            "n": int(n),
            "KL (nats)": round(float(kl), 3),
            "d = √KL": round(float(d), 3),
            "reward-model score": round(float(p), 2),
            "correct": f"{t:.0%}",
            "length of pick (tokens)": round(float(length), 1),
            "KL on the pool (nats)": round(float(e), 3),
        }
        for n, kl, d, p, t, length, e in zip(
            curve.ns, curve.kl, curve.d, curve.proxy, curve.true, curve.length, curve.kl_empirical, strict=True
        )
    ]
