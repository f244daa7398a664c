"""DPO's implicit reward against a trained reward model (DPO card Q1: "your language model is secretly a reward
model", Rafailov et al. 2023).

DPO eliminates the reward from RLHF's objective through the closed form of its optimum, π*(y|x) ∝ π_ref(y|x) ·
exp(r(x, y)/β), so that r(x, y) = β·log π*(y|x)/π_ref(y|x) + β·log Z(x). Read backwards, a DPO-trained policy
carries a reward: r̂(x, y) = β·(log π(y|x) − log π_ref(y|x)), defined up to the per-question constant β·log Z(x).
Here that implicit reward of the bundled tiny-dpo (π_ref = tiny-sft, β from its history.json) is set beside the
scores of the bundled reward model (trl's RewardTrainer on the same training pairs) on answers neither was trained
on: the test pairs (fresh answers to the training questions) and the unseen pairs (questions in no training pair).

    report = compare(policy, reference, tokenizer, reward_model, pairs_by_split, beta=0.1)
    report.pearson, report.spearman, report.agreement

The per-question constant cancels inside a pair, so the pairwise agreement (do both pick the same answer of a
pair?) is the comparison the theory promises; a correlation over all answers also mixes in how each reward
offsets one question against another, so it is reported raw and with each question's mean taken out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmlab import dpo, reward
from llmlab.modeling import MODELS_DIR

DEFAULT_BETA = 0.1  # trl's default, and what models/tiny-dpo was trained with
SPLIT_LABELS = {"test": "held-out pairs, training questions", "unseen": "unseen questions"}


def trained_beta(model_dir: Path = MODELS_DIR / "tiny-dpo") -> float:
    """The β a bundled DPO model was trained with (its history.json, written by scripts/train_aligned.py)."""
    history = model_dir / "history.json"
    if history.is_file():
        settings = json.loads(history.read_text()).get("settings", {}).get("dpo", {})
        if "beta" in settings:
            return float(settings["beta"])
    return DEFAULT_BETA


@dataclass(frozen=True)
class ScoredAnswer:
    """One answer of one held-out pair, scored both ways."""

    split: str
    pair: int  # index of its pair in the report
    prompt: str  # as the models read it (chat markers included)
    answer: str
    chosen: bool  # the pair's preferred answer
    logp_policy: float  # log π(y|x), nats summed over the answer's tokens (with the end-of-text token)
    logp_reference: float  # log π_ref(y|x)
    implicit: float  # β·(log π − log π_ref)
    rm: float  # the reward model's score


@dataclass(frozen=True)
class ImplicitRewardReport:
    beta: float
    answers: tuple[ScoredAnswer, ...]  # two per pair: chosen then rejected
    pearson: float  # over every answer
    spearman: float
    pearson_within: float  # each question's mean taken out of both rewards first (β·log Z(x) removed)
    agreement: float  # share of pairs where both rewards rank the two answers the same way
    implicit_accuracy: float  # share of pairs where the implicit reward ranks the chosen answer first
    rm_accuracy: float  # share of pairs where the reward model does

    @property
    def n_pairs(self) -> int:
        return len(self.answers) // 2

    def split_rows(self) -> list[dict]:
        """The same numbers per split (and all together), for a table."""
        rows = []
        for split in [*dict.fromkeys(a.split for a in self.answers), None]:
            answers = [a for a in self.answers if split is None or a.split == split]
            stats = _stats(answers)
            rows.append({
                "answers": SPLIT_LABELS.get(split, split) if split else "all held-out answers",
                "pairs": len(answers) // 2,
                "Pearson r": round(stats["pearson"], 3),
                "Spearman ρ": round(stats["spearman"], 3),
                "Pearson r, per-question means removed": round(stats["pearson_within"], 3),
                "pairwise agreement": f"{stats['agreement']:.1%}",
                "implicit reward picks the chosen": f"{stats['implicit_accuracy']:.1%}",
                "reward model picks the chosen": f"{stats['rm_accuracy']:.1%}",
            })  # fmt: skip
        return rows


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's correlation coefficient (nan when either side is constant or has fewer than 2 values)."""
    if len(x) != len(y):
        raise ValueError("pearson() needs two sequences of the same length")
    if len(x) < 2:
        return float("nan")
    a = torch.tensor(x, dtype=torch.float64)
    b = torch.tensor(y, dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties given their average rank (what Spearman's ρ correlates)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's on the ranks."""
    return pearson(ranks(x), ranks(y))


def _centred(answers: Sequence[ScoredAnswer], field: str) -> list[float]:
    by_prompt: dict[str, list[float]] = {}
    for a in answers:
        by_prompt.setdefault(a.prompt, []).append(getattr(a, field))
    means = {p: sum(v) / len(v) for p, v in by_prompt.items()}
    return [getattr(a, field) - means[a.prompt] for a in answers]


def _stats(answers: Sequence[ScoredAnswer]) -> dict[str, float]:
    implicit = [a.implicit for a in answers]
    rm = [a.rm for a in answers]
    chosen, rejected = answers[0::2], answers[1::2]
    n = max(1, len(chosen))
    return {
        "pearson": pearson(implicit, rm),
        "spearman": spearman(implicit, rm),
        "pearson_within": pearson(_centred(answers, "implicit"), _centred(answers, "rm")),
        "agreement": sum((c.implicit > r.implicit) == (c.rm > r.rm) for c, r in zip(chosen, rejected, strict=True)) / n,
        "implicit_accuracy": sum(c.implicit > r.implicit for c, r in zip(chosen, rejected, strict=True)) / n,
        "rm_accuracy": sum(c.rm > r.rm for c, r in zip(chosen, rejected, strict=True)) / n,
    }


def implicit_rewards(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[dpo.Pair],
    beta: float,
) -> list[tuple[float, float, float, float]]:
    """(log π(chosen), log π_ref(chosen), log π(rejected), log π_ref(rejected)) of each pair, with trl's DPO
    tokenisation (`llmlab.dpo.score_pairs`); the implicit reward of an answer is β times its log-ratio."""
    del beta  # the log-probs do not depend on it; kept in the signature so call sites read like the maths
    scores = dpo.score_pairs(policy, reference, tokenizer, pairs)
    return [(s.policy_chosen, s.reference_chosen, s.policy_rejected, s.reference_rejected) for s in scores]


@torch.inference_mode()
def compare(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reward_model: PreTrainedModel,
    pairs_by_split: Mapping[str, Sequence[dpo.Pair]],
    beta: float,
    reward_tokenizer: PreTrainedTokenizerBase | None = None,
) -> ImplicitRewardReport:
    """Score every answer of the held-out pairs with the implicit reward and the reward model."""
    answers: list[ScoredAnswer] = []
    for split, pairs in pairs_by_split.items():
        if not pairs:
            continue
        logps = implicit_rewards(policy, reference, tokenizer, pairs, beta)
        prompts = [str(p["prompt"]) for p in pairs]  # as the reward model was trained: chat markers included
        rm = reward.score(
            reward_model,
            reward_tokenizer or tokenizer,
            prompts + prompts,
            [dpo.answer_text(p["chosen"]) for p in pairs] + [dpo.answer_text(p["rejected"]) for p in pairs],
        ).tolist()
        n = len(pairs)
        for i, (pair, (pc, rc, pr, rr)) in enumerate(zip(pairs, logps, strict=True)):
            index = len(answers) // 2
            for chosen, text, lp, lr, score in (
                (True, dpo.answer_text(pair["chosen"]), pc, rc, rm[i]),
                (False, dpo.answer_text(pair["rejected"]), pr, rr, rm[n + i]),
            ):
                answers.append(ScoredAnswer(split, index, prompts[i], text, chosen, lp, lr, beta * (lp - lr), score))
    if not answers:
        raise ValueError("compare() needs at least one pair")
    stats = _stats(answers)
    return ImplicitRewardReport(beta=beta, answers=tuple(answers), **stats)


def least_squares(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line y ≈ slope·x + intercept."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sxx if sxx > 0 else 0.0
    return slope, my - slope * mx


def scatter_figure(report: ImplicitRewardReport, title: str):
    """Implicit reward (y) against the reward model's score (x), one dot per held-out answer, chosen answers
    green and rejected ones red, with the least-squares line. Answer text is HTML-escaped for the hover."""
    import html

    import plotly.graph_objects as go

    from llmlab.plots import MUTED, style

    fig = go.Figure()
    for chosen, name, color in ((True, "chosen answers", "#54a24b"), (False, "rejected answers", "#e45756")):
        rows = [a for a in report.answers if a.chosen is chosen]
        fig.add_scatter(
            x=[a.rm for a in rows],
            y=[a.implicit for a in rows],
            mode="markers",
            name=name,
            marker={"color": color, "size": 6, "opacity": 0.7},
            text=[
                html.escape(
                    f"{SPLIT_LABELS.get(a.split, a.split)} · {dpo.prompt_text({'prompt': a.prompt})} → {a.answer}"
                )
                for a in rows
            ],
            hovertemplate="%{text}<br>RM %{x:.2f}, implicit %{y:.3f}<extra></extra>",
        )
    xs = [a.rm for a in report.answers]
    slope, intercept = least_squares(xs, [a.implicit for a in report.answers])
    ends = [min(xs), max(xs)]
    fig.add_scatter(
        x=ends,
        y=[slope * x + intercept for x in ends],
        mode="lines",
        name="least-squares line",
        line={"color": MUTED, "dash": "dash"},
    )
    return style(
        fig,
        title,
        "reward model's score (logit units)",
        f"implicit reward β·log π/π_ref (β = {report.beta:g}, nats)",
        height=380,
    )
