"""Reward over-optimisation with best-of-n (Gao, Schulman & Hilton 2022, "Scaling Laws for Reward Model
Overoptimization"): pick the best of n samples by the proxy reward model and watch the true reward.

Best-of-n needs no training. For each question we sample `n_max` answers from the SFT model once, score them
with the proxy reward model and with the true reward (correctness), and every n ≤ n_max is then exact
arithmetic on that pool: the expected score of the best-of-n pick, averaged over random n-subsets of the pool
(the unbiased estimator of Nakano et al. 2021 / Gao et al. 2022, appendix), so the curve is smooth.

Best-of-n moves the policy by an analytic KL, log n − (n−1)/n nats, and Gao et al. plot rewards against
d = √KL, fitting the gold (true) reward's gain over the initial policy with R_bon(d) = d(α − β·d) (and
R_RL(d) = d(α − β·log d) for RL):

    pool = sample_pool(sft, rm.model, default_questions())   # cache it: the only model calls
    curve = best_of_n_curve(pool)                            # .ns, .kl, .d, .proxy, .true, .length, .padding
    fit = fit_bon(curve.d, curve.true)                       # .alpha, .beta, .peak_d, fit(d)
    summary(curve, fit)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedModel

from llmlab import preferences
from llmlab.modeling import LoadedModel
from llmlab.nexttoken import sample_answers
from llmlab.preferences import Question, padding_level, true_reward
from llmlab.reward import score

NS = (1, 2, 4, 8, 16, 32, 64)  # the n of best-of-n the page plots
N_MAX = 64  # answers sampled per question
# ~1.5 s to sample and score with torch on one thread (measured: 2 threads on a busy 2-core box took 30-44 s)
DEFAULT_QUESTIONS = 24
MAX_NEW_TOKENS = 24  # the SFT model's answers are ≤ 21 tokens long
FALL_MARGIN = 0.02  # a smaller drop of the share of correct answers from its peak is not called a fall


def bon_kl(n):
    """KL(best-of-n ‖ π_ref) = log n − (n−1)/n nats (Stiennon et al. 2020; Gao et al. 2022 eq. 1).

    Exact when no two samples tie; an upper bound otherwise (see `empirical_bon_kl`). 0 at n = 1. Takes arrays."""
    n = np.asarray(n, dtype=float)
    if np.any(n < 1):
        raise ValueError("best-of-n needs n ≥ 1")
    kl = np.log(n) - (n - 1) / n
    return float(kl) if kl.ndim == 0 else kl


def n_for_kl(kl: float) -> float:
    """The (real) n ≥ 1 whose best-of-n KL is `kl` nats: bon_kl inverted by bisection (it rises with n)."""
    if kl < 0:
        raise ValueError("KL must be ≥ 0")
    low, high = 1.0, 2.0
    while bon_kl(high) < kl:
        low, high = high, 2 * high
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if bon_kl(mid) < kl else (low, mid)
    return (low + high) / 2


# -- the sampled pool ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """n_max sampled answers for each of Q questions, scored once: plain arrays of shape (Q, n_max), so a page
    can cache it (st.cache_data pickles it)."""

    prompts: tuple[str, ...]  # (Q,) chat-formatted prompts
    texts: tuple[tuple[str, ...], ...]  # (Q, n_max) the answers, without the end-of-text token
    proxy: np.ndarray  # (Q, n_max) reward-model scores
    true: np.ndarray  # (Q, n_max) the true reward (1 = correct), preferences.true_reward
    lengths: np.ndarray  # (Q, n_max) answer length in tokens, with the end-of-text token
    padding: np.ndarray  # (Q, n_max) polite phrases in each answer, preferences.padding_level
    seed: int

    @property
    def n_max(self) -> int:
        return self.proxy.shape[1]


def default_questions(count: int = DEFAULT_QUESTIONS, split: str = "test") -> list[Question]:
    """`count` questions of `split`, evenly spread over its list (so over countries and the three kinds)."""
    pool = preferences.questions(split)
    if not 1 <= count <= len(pool):
        raise ValueError(f"count must be between 1 and {len(pool)}")
    return [pool[i] for i in np.linspace(0, len(pool) - 1, count).round().astype(int)]


def question_seed(seed: int, prompt: str) -> int:
    """The sampling seed of one question: its samples do not depend on which other questions are in the pool."""
    return seed * 1_000_003 + zlib.crc32(prompt.encode())


def sample_pool(
    sft: LoadedModel,
    reward_model: PreTrainedModel,
    questions: Sequence[Question | str],
    n_max: int = N_MAX,
    seed: int = 0,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> Pool:
    """Sample `n_max` answers per question from the SFT model (temperature 1, one batch per question) and score
    each with `reward_model` (a RewardRun's .model; it shares the SFT tokenizer) and with the true reward."""
    if n_max < 1 or not questions:
        raise ValueError("Need at least one question and n_max ≥ 1.")
    tok = sft.tokenizer
    eos = tok.eos_token_id
    prompts = tuple(q.prompt if isinstance(q, Question) else q for q in questions)
    texts, lengths = [], []
    for prompt in prompts:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        answers = sample_answers(sft.model, tok, [ids] * n_max, max_new_tokens, seed=question_seed(seed, prompt))
        texts.append(tuple(tok.decode([i for i in a if i != eos]) for a in answers))
        lengths.append([len(a) for a in answers])
    flat_prompts = [p for p in prompts for _ in range(n_max)]
    flat_texts = [t for row in texts for t in row]
    shape = (len(prompts), n_max)
    proxy = score(reward_model, tok, flat_prompts, flat_texts).double().numpy().reshape(shape)
    true = np.array([true_reward(p, t) for p, t in zip(flat_prompts, flat_texts, strict=True)]).reshape(shape)
    padding = np.array([padding_level(t) for t in flat_texts], dtype=float).reshape(shape)
    if not np.all(np.isfinite(proxy)):
        raise ValueError("A reward-model score is NaN or infinite: the reward model has diverged.")
    return Pool(prompts, tuple(texts), proxy, true, np.array(lengths, dtype=float), padding, seed)


# -- best-of-n, exactly, on the pool ---------------------------------------------------------------------------


def best_of_n_weights(n: int, pool_size: int) -> np.ndarray:
    """P(the sample of rank i is the best of a uniformly random n-subset of the pool), i = 1…N ascending:
    C(i−1, n−1) / C(N, n) (the n−1 others must all rank below it). Sums to 1 (hockey-stick identity)."""
    if not 1 <= n <= pool_size:
        raise ValueError(f"n must be between 1 and the pool size {pool_size}")
    total = math.comb(pool_size, n)
    return np.array([math.comb(i - 1, n - 1) / total for i in range(1, pool_size + 1)])


def best_of_n_expectation(scores: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """E[value of the best-of-n pick by `scores`] over all n-subsets of each row's N samples: (Q, N) → (Q,).

    Ties in score are broken by sample order (the later sample wins), which, as the samples are i.i.d., is a
    random tie-break; tied samples are almost always the same answer anyway."""
    scores, values = np.atleast_2d(scores), np.atleast_2d(values)
    order = np.argsort(scores, axis=1, kind="stable")  # ascending rank
    return np.take_along_axis(values, order, axis=1) @ best_of_n_weights(n, scores.shape[1])


def empirical_bon_kl(texts: Sequence[str], scores: np.ndarray, n: int) -> float:
    """KL(best-of-n ‖ π_ref) in nats with π_ref taken as the pool's answer frequencies q (equal texts merged):
    best-of-n from q picks the answer of score rank j with probability F_j^n − F_{j−1}^n (F: q's cumulative sum
    in score order). A small model repeats its answers, so this is well under the no-ties log n − (n−1)/n."""
    merged: dict[str, list] = {}
    for text, value in zip(texts, scores, strict=True):
        merged.setdefault(text, [value, 0])[1] += 1
    ranked = sorted(merged.values(), key=lambda entry: entry[0])
    q = np.array([count for _, count in ranked], dtype=float) / len(texts)
    cdf = np.cumsum(q)
    p = cdf**n - np.clip(cdf - q, 0, None) ** n
    return float(np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q), 0.0)))


@dataclass(frozen=True)
class BestOfNCurve:
    """The best-of-n pick's expected scores at each n (means over questions; *_by_question are (Q, len(ns)))."""

    ns: np.ndarray
    kl: np.ndarray  # analytic KL from the SFT model, nats
    d: np.ndarray  # √KL, Gao et al.'s x-axis
    kl_empirical: np.ndarray  # mean over questions of empirical_bon_kl: the KL with this model's repeats
    proxy_by_question: np.ndarray
    true_by_question: np.ndarray
    length: np.ndarray  # mean tokens of the pick
    padding: np.ndarray  # mean polite phrases of the pick

    @property
    def proxy(self) -> np.ndarray:
        return self.proxy_by_question.mean(axis=0)

    @property
    def true(self) -> np.ndarray:
        return self.true_by_question.mean(axis=0)


def best_of_n_curve(pool: Pool, ns: Sequence[int] = NS) -> BestOfNCurve:
    """Best-of-n for every n in `ns` (each ≤ pool.n_max): the pick's expected proxy score, true reward, length
    and padding, with the unbiased estimator over each question's pool."""
    ns = np.array(sorted(set(ns)), dtype=int)
    kl = bon_kl(ns)

    def per_n(values: np.ndarray) -> np.ndarray:  # (Q, len(ns))
        return np.stack([best_of_n_expectation(pool.proxy, values, int(n)) for n in ns], axis=1)

    return BestOfNCurve(
        ns=ns,
        kl=kl,
        d=np.sqrt(kl),
        kl_empirical=np.array(
            [np.mean([empirical_bon_kl(t, s, int(n)) for t, s in zip(pool.texts, pool.proxy, strict=True)]) for n in ns]
        ),
        proxy_by_question=per_n(pool.proxy),
        true_by_question=per_n(pool.true),
        length=per_n(pool.lengths).mean(axis=0),
        padding=per_n(pool.padding).mean(axis=0),
    )


# -- Gao et al.'s functional forms ---------------------------------------------------------------------------


def bon_form(d, alpha: float, beta: float):
    """Gain of best-of-n over the initial policy: R_bon(d) = d(α − β·d)."""
    d = np.asarray(d, dtype=float)
    return d * (alpha - beta * d)


def rl_form(d, alpha: float, beta: float):
    """Gain of RL over the initial policy: R_RL(d) = d(α − β·log d) (0 at d = 0)."""
    d = np.asarray(d, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, d * (alpha - beta * np.log(np.where(d > 0, d, 1.0))), 0.0)


@dataclass(frozen=True)
class Fit:
    """A fitted gain curve r(d) = r0 + form(d; α, β); `peak_d` is its interior maximum (None if it has none)."""

    form: str  # "bon" or "rl"
    alpha: float
    beta: float
    r0: float  # the measured reward of the initial policy (d = 0), which the fit is relative to
    peak_d: float | None

    @property
    def peak_kl(self) -> float | None:
        return None if self.peak_d is None else self.peak_d**2

    def __call__(self, d):
        """The fitted reward (not the gain) at d."""
        gain = bon_form if self.form == "bon" else rl_form
        return self.r0 + gain(d, self.alpha, self.beta)


def _least_squares(columns: list[np.ndarray], target: np.ndarray) -> tuple[float, float]:
    """The two coefficients c of target ≈ Σ c_k·columns_k (no intercept)."""
    (a, b), *_ = np.linalg.lstsq(np.stack(columns, axis=1), target, rcond=None)
    return float(a), float(b)


def _initial(d: np.ndarray, r: np.ndarray) -> float:
    if not np.any(d == 0):
        raise ValueError("The fit is relative to the initial policy: include d = 0 (n = 1).")
    return float(r[d == 0].mean())


def fit_bon(d, r) -> Fit:
    """Least-squares α, β of the gain r(d) − r(0) ≈ d(α − β·d), as Gao et al. fit rewards relative to the
    initial policy (R(0) = 0): r(0) is the measured n = 1 value, not a free parameter. The peak is at
    d* = α/(2β) when β > 0 and α > 0; otherwise the fitted curve has no maximum at d > 0 (None)."""
    d, r = np.asarray(d, dtype=float), np.asarray(r, dtype=float)
    r0 = _initial(d, r)
    if np.count_nonzero(d > 0) < 2:
        raise ValueError("Need at least two points with d > 0 to fit α and β.")
    alpha, beta = _least_squares([d, -(d**2)], r - r0)
    peak = alpha / (2 * beta) if beta > 0 and alpha > 0 else None
    return Fit("bon", alpha, beta, r0, peak)


def fit_rl(d, r) -> Fit:
    """Least-squares α, β of the gain r(d) − r(0) ≈ d(α − β·log d) over the points with d > 0 (r(0), the
    initial policy's reward, must be among the points). dR/dd = α − β(log d + 1) = 0 gives the peak
    d* = exp(α/β − 1), a maximum when β > 0; None when β ≤ 0 (no interior maximum)."""
    d, r = np.asarray(d, dtype=float), np.asarray(r, dtype=float)
    r0 = _initial(d, r)
    pos = d > 0
    if np.count_nonzero(pos) < 2:
        raise ValueError("Need at least two points with d > 0 to fit α and β.")
    alpha, beta = _least_squares([d[pos], -d[pos] * np.log(d[pos])], r[pos] - r0)
    peak = math.exp(alpha / beta - 1) if beta > 0 else None
    return Fit("rl", alpha, beta, r0, peak)


# -- in words ---------------------------------------------------------------------------------------------------


def true_fall(curve: BestOfNCurve) -> tuple[int, float, float]:
    """(index of the n where the share of correct answers peaks, its drop from there to the largest n, the
    standard error of that drop over questions)."""
    peak = int(curve.true.argmax())
    drops = curve.true_by_question[:, peak] - curve.true_by_question[:, -1]
    se = float(drops.std(ddof=1) / math.sqrt(len(drops))) if len(drops) > 1 else math.inf
    return peak, float(drops.mean()), se


def summary(curve: BestOfNCurve, fit: Fit) -> str:
    """The measured curve in words: what best-of-n does to the proxy score and to correctness, whether
    correctness falls from its peak (by at least FALL_MARGIN and two standard errors over questions), and where
    the fitted d(α − βd) peaks. `fit` is fit_bon of the curve's true reward."""
    proxy, true, ns, d = curve.proxy, curve.true, curve.ns, curve.d
    if np.all(np.diff(proxy) >= -1e-9):
        first = (
            f"Best-of-n raises the reward model's score at every n ({proxy[0]:.2f} → {proxy[-1]:.2f} "
            f"from n = 1 to {ns[-1]})"
        )
    else:
        first = f"The reward model's score goes {proxy[0]:.2f} → {proxy[-1]:.2f} from n = 1 to {ns[-1]}"
    peak, drop, se = true_fall(curve)
    if peak < len(ns) - 1 and drop >= FALL_MARGIN and drop >= 2 * se:
        if true[peak] - true[0] < FALL_MARGIN:
            second = (
                f"correct answers never rise above n = 1's {true[0]:.0%} and fall to {true[-1]:.0%} at n = {ns[-1]}: "
                "over-optimisation from the start"
            )
        else:
            second = (
                f"correct answers rise from {true[0]:.0%} to {true[peak]:.0%} at n = {ns[peak]} (d = {d[peak]:.2f}) "
                f"and then fall to {true[-1]:.0%} at n = {ns[-1]}: over-optimisation"
            )
    elif true[-1] > true[0] + FALL_MARGIN:
        second = f"correct answers rise too, {true[0]:.0%} → {true[-1]:.0%}, and do not fall on this model"
    else:
        second = (
            f"correct answers stay about level ({true[0]:.0%} at n = 1, {true[-1]:.0%} at n = {ns[-1]}): "
            "no over-optimisation shows here"
        )
    if fit.peak_d is None:
        third = "The fitted d(α − βd) has no peak at d > 0."
    elif fit.peak_d > d[-1]:
        third = f"The fitted d(α − βd) would peak at d ≈ {fit.peak_d:.2f}, beyond the largest n measured."
    else:
        third = (
            f"The fitted d(α − βd) peaks at d ≈ {fit.peak_d:.2f} (KL ≈ {fit.peak_kl:.2f} nats, "
            f"n ≈ {n_for_kl(fit.peak_kl):.1f}), {100 * (fit(fit.peak_d) - fit.r0):.1f} points above n = 1."
        )
    return f"{first}; {second}. {third}"


# -- online RL's checkpoints on the same axes ---------------------------------------------------------------------


@dataclass(frozen=True)
class RLPoints:
    """One online RL run's steps as points on Gao et al.'s axes: d = √KL (the run's own per-answer estimate,
    log π − log π_ref summed along sampled answers, clipped at 0: a batch's estimate can dip below), and the
    proxy and true reward of the answers sampled at that step; means over `window` consecutive steps."""

    beta: float
    d: np.ndarray
    proxy: np.ndarray
    true: np.ndarray


def rl_points(history: Sequence[dict], window: int = 5) -> list[RLPoints]:
    """Per β of an online-RL history (llmlab.rlhf metrics: kl_seq, rewards/judge/mean, true_reward): the first
    step's answers come from the start policy, so its d is 0 exactly; later steps are averaged in windows."""
    runs = []
    for beta in dict.fromkeys(h["beta"] for h in history):
        steps = [h for h in history if h["beta"] == beta and "kl_seq" in h]
        if len(steps) < 2:
            continue
        kl = np.array([0.0] + [max(h["kl_seq"], 0.0) for h in steps[1:]])
        proxy = np.array([h["rewards/judge/mean"] for h in steps])
        true = np.array([h["true_reward"] for h in steps])
        cuts = [0, 1, *range(1 + window, len(steps), window), len(steps)]
        groups = [slice(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
        runs.append(
            RLPoints(
                beta=float(beta),
                d=np.sqrt([kl[g].mean() for g in groups]),
                proxy=np.array([proxy[g].mean() for g in groups]),
                true=np.array([true[g].mean() for g in groups]),
            )
        )
    return runs
