"""Chinchilla scaling: predicted loss from model size and data, and the compute-optimal split of a budget.

Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", fit (their Approach 3)

    L(N, D) = E + A / N^alpha + B / D^beta        N = parameters, D = training tokens, L in nats/token
    C ~= 6 N D                                     training FLOPs (forward 2ND + backward 4ND)

with E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28. For a fixed budget C, setting D = C/(6N)
and dL/dN = 0 gives the compute-optimal model

    N_opt = G (C/6)^(beta/(alpha+beta)),  D_opt = (C/6) / N_opt,  G = (alpha A / (beta B))^(1/(alpha+beta)).

The paper's headline rule "about 20 tokens per parameter" comes from its other two approaches; this fit's
own optimum asks for more tokens per parameter (and more as C grows). The page shows both.

    predicted_loss(7e9, 100e9)        # 2.215 nats/token: 7B params x 100B tokens
    compute_optimal(6 * 7e9 * 100e9)  # TrainingRun(~3.5B params, ~200B tokens)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScalingLaw:
    """L(N, D) = E + A/N^alpha + B/D^beta (nats per token)."""

    E: float = 1.69  # irreducible loss: the entropy of text itself
    A: float = 406.4
    B: float = 410.7
    alpha: float = 0.34  # how fast loss falls with parameters
    beta: float = 0.28  # how fast loss falls with tokens


CHINCHILLA = ScalingLaw()
FLOPS_PER_PARAM_TOKEN = 6  # forward (2) + backward (4) multiply-adds per parameter per token
RULE_TOKENS_PER_PARAM = 20  # the paper's headline rule of thumb


@dataclass(frozen=True)
class TrainingRun:
    """A model of `n_params` parameters trained on `n_tokens` tokens."""

    label: str
    n_params: float
    n_tokens: float

    @property
    def compute(self) -> float:
        return training_flops(self.n_params, self.n_tokens)

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params

    def loss(self, law: ScalingLaw = CHINCHILLA) -> float:
        return float(predicted_loss(self.n_params, self.n_tokens, law))


# Think-it-through Q3: the same budget spent two ways, and today's "overtrained small model".
Q3_SMALL = TrainingRun("7B params × 100B tokens", 7e9, 100e9)
Q3_LARGE = TrainingRun("70B params × 10B tokens", 70e9, 10e9)
OVERTRAINED = TrainingRun("8B params × 15T tokens (Llama-3 8B)", 8e9, 15e12)


def predicted_loss(n_params, n_tokens, law: ScalingLaw = CHINCHILLA):
    """L(N, D) in nats per token; works on floats or numpy arrays. N and D must be > 0."""
    n = np.asarray(n_params, dtype=float)
    d = np.asarray(n_tokens, dtype=float)
    if np.any(n <= 0) or np.any(d <= 0):
        raise ValueError("parameters and tokens must be positive")
    loss = law.E + law.A / n**law.alpha + law.B / d**law.beta
    return float(loss) if loss.ndim == 0 else loss


def training_flops(n_params: float, n_tokens: float) -> float:
    """C ~= 6 N D floating-point operations."""
    return FLOPS_PER_PARAM_TOKEN * n_params * n_tokens


def tokens_for_budget(compute: float, n_params):
    """D = C / (6N): the tokens a budget buys for a model of N parameters."""
    return compute / (FLOPS_PER_PARAM_TOKEN * np.asarray(n_params, dtype=float))


def compute_optimal(compute: float, law: ScalingLaw = CHINCHILLA) -> TrainingRun:
    """The (N, D) on the iso-compute curve C = 6ND with the lowest predicted loss (closed form above)."""
    if not compute > 0:
        raise ValueError("the compute budget must be positive")
    g = (law.alpha * law.A / (law.beta * law.B)) ** (1 / (law.alpha + law.beta))
    n = g * (compute / FLOPS_PER_PARAM_TOKEN) ** (law.beta / (law.alpha + law.beta))
    return TrainingRun("compute-optimal (this fit)", n, compute / (FLOPS_PER_PARAM_TOKEN * n))


def rule_of_thumb(compute: float, tokens_per_param: float = RULE_TOKENS_PER_PARAM) -> TrainingRun:
    """The split with D = 20 N: N = sqrt(C / (6 * 20))."""
    n = math.sqrt(compute / (FLOPS_PER_PARAM_TOKEN * tokens_per_param))
    return TrainingRun(f"{tokens_per_param:g} tokens per parameter", n, tokens_per_param * n)


def iso_compute_curve(compute: float, n_params: np.ndarray, law: ScalingLaw = CHINCHILLA):
    """Along C = 6ND: (N, D, predicted loss) for each N."""
    n = np.asarray(n_params, dtype=float)
    d = tokens_for_budget(compute, n)
    return n, d, predicted_loss(n, d, law)


def compute_for_loss(target_loss: float, law: ScalingLaw = CHINCHILLA) -> float:
    """The smallest budget C whose compute-optimal run reaches `target_loss` (bisection on log C)."""
    if not target_loss > law.E:
        raise ValueError(f"no finite budget reaches a loss at or below E = {law.E}")
    lo, hi = 1.0, 1e40  # FLOPs
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if compute_optimal(mid, law).loss(law) > target_loss:
            lo = mid
        else:
            hi = mid
    return hi


def param_grid(compute: float, decades: float = 2.0, points: int = 121) -> np.ndarray:
    """Parameter counts spanning `decades` either side of the compute-optimal size, log-spaced."""
    centre = math.log10(compute_optimal(compute).n_params)
    return np.logspace(centre - decades, centre + decades, points)


def format_count(value: float) -> str:
    """7e9 -> "7B", 1.5e13 -> "15T", 950_000 -> "950K"."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


# -- what the Chinchilla demo compares ---------------------------------------------------------------------

NAMED_RUNS = (Q3_SMALL, Q3_LARGE, OVERTRAINED)  # drawn on every chart beside the user's run


def same_run(a: TrainingRun, b: TrainingRun) -> bool:
    return math.isclose(a.n_params, b.n_params, rel_tol=1e-6) and math.isclose(a.n_tokens, b.n_tokens, rel_tol=1e-6)


def runs_to_show(run: TrainingRun) -> tuple[TrainingRun, ...]:
    """The named runs, and `run` unless it is one of them (the demo's default is Q3's first option)."""
    return NAMED_RUNS if any(same_run(run, named) for named in NAMED_RUNS) else (*NAMED_RUNS, run)


def budgets(run: TrainingRun) -> dict[str, float]:
    """The budgets whose iso-compute curves are drawn: the run's, Q3's and 8B × 15T's (FLOPs), each once."""
    out = {"your budget": run.compute}
    for name, compute in (("Q3's budget", Q3_SMALL.compute), ("8B × 15T's budget", OVERTRAINED.compute)):
        if not any(math.isclose(compute, c, rel_tol=1e-3) for c in out.values()):
            out[name] = compute
    return out


def frontier(budgets_grid: np.ndarray) -> tuple[list[TrainingRun], list[TrainingRun]]:
    """For each budget: this fit's compute-optimal run, and the 20-tokens-per-parameter rule's."""
    return [compute_optimal(c) for c in budgets_grid], [rule_of_thumb(c) for c in budgets_grid]


def comparison_rows(run: TrainingRun) -> list[dict]:
    """One row per run (Q3's two options, 8B × 15T, the user's): size, data, compute, loss, the optimum's loss."""
    rows = []
    for r in (*NAMED_RUNS, run):
        rows.append(
            {
                "run": r.label,
                "N": format_count(r.n_params),
                "D (tokens)": format_count(r.n_tokens),
                "C (FLOPs)": f"{r.compute:.2e}",
                "tokens per parameter": round(r.tokens_per_param, 1),
                "predicted loss": round(r.loss(), 4),
                "optimum's loss at this C": round(compute_optimal(r.compute).loss(), 4),
            }
        )
    return rows


@dataclass(frozen=True)
class OvertrainedTwin:
    """The compute-optimal run that reaches the overtrained 8B × 15T model's loss."""

    compute: float  # FLOPs it needs
    run: TrainingRun

    @property
    def training_saving(self) -> float:
        """How many times less training compute than 8B × 15T."""
        return OVERTRAINED.compute / self.compute

    @property
    def serving_cost(self) -> float:
        """How many times more parameters (cost per generated token) than 8B."""
        return self.run.n_params / OVERTRAINED.n_params


def overtrained_twin() -> OvertrainedTwin:
    needed = compute_for_loss(OVERTRAINED.loss())
    return OvertrainedTwin(needed, compute_optimal(needed))
