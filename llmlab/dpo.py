"""The DPO core: the loss and its gradient weight, the implicit reward of a pair, and trl's DPOTrainer run.

Follows Rafailov et al. 2023 ("Your Language Model is Secretly a Reward Model") and trl 1.16's `DPOTrainer`
with its default `loss_type="sigmoid"`. For a pair (prompt x, chosen y_w, rejected y_l):

    Δ_w = log π(y_w|x) − log π_ref(y_w|x)          # log-ratio of the chosen answer (nats)
    Δ_l = log π(y_l|x) − log π_ref(y_l|x)          # log-ratio of the rejected answer
    margin = Δ_w − Δ_l
    loss = −log σ(β · margin)                      # dpo_loss
    ∂loss/∂margin = −β · σ(−β · margin)            # σ(−β·margin) = dpo_gradient_weight
    implicit reward r(x, y) = β · log π(y|x)/π_ref(y|x)

Log-probs are summed over the answer's tokens (and its end-of-text token), tokenized exactly as trl does, so
`score_pairs(...)` reproduces trl's logged `loss`, `rewards/*` and `logps/*` for the same batch
(tests/test_dpo.py checks it). How a trained policy is then scored (held-out pairs, KL, sampled answers) is
`llmlab.policy_eval`; the DPO page's experiments (live run, β sweep, offline limit, single annotator, DPO vs
RLHF) are `llmlab.dpo_experiments`.

    run = train_dpo(start, train_pairs, DPOSettings(beta=0.1, steps=50))   # start: a LoadedModel (tiny-sft)
    [score] = score_pairs(run.policy, run.reference, start.tokenizer, [pair])
    score.margin, score.reward_chosen(0.1), score.loss(0.1)
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmlab.jobs import DivergedError, Job, JobCallback
from llmlab.modeling import LoadedModel, trainable_copy
from llmlab.nexttoken import context_limit, sequence_logps
from llmlab.preferences import question_text
from llmlab.trainargs import demo_trainer_args

Pair = Mapping[str, Any]  # {"prompt", "chosen", "rejected"}: strings, or chat messages as trl accepts them

# the page's log slider, up to β = 10, where DPO barely moves the policy (card Q4)
BETA_CHOICES = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0, 3.0, 5.0, 10.0)
SWEEP_BETAS = (0.01, 0.05, 0.1, 0.5, 1.0)  # the β sweep's default five
LOSS_BETAS = tuple(float(f"{10 ** (k / 10):.3g}") for k in range(-20, 11))  # the loss chart's slider: 0.01 … 10
LOG_KEYS = (  # trl's per-step metrics the live charts draw
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
)
# A DPO loss starts at log 2 (policy = reference: every margin is 0). A run whose recent losses average above
# twice that is overshooting (llmlab.jobs.overshooting): the learning rate, or the β, is too high.
OVERSHOOT_LOSS = 2 * math.log(2)


class PairError(ValueError):
    """A preference pair DPO cannot learn from (empty prompt or answer, chosen identical to rejected)."""


class SettingsError(ValueError):
    """A DPO setting out of range (β <= 0, a NaN learning rate, ...); the message says which and why."""


# -- settings ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DPOSettings:
    """One DPO run. The `help` texts are the page's slider help, so code and UI say the same thing."""

    beta: float = field(
        default=0.1,
        metadata={
            "help": "β: how strongly the policy is tied to the reference. Small β lets it drift far from the "
            "SFT model to fit the pairs; large β keeps it close. The loss is −log σ(β·margin)."
        },
    )
    steps: int = field(default=50, metadata={"help": "Optimizer steps of DPOTrainer (one batch of pairs each)."})
    learning_rate: float = field(
        default=2e-4,
        metadata={
            "help": "AdamW step size (constant). 1e-4–3e-4 suits this 1M-parameter model; from ~5e-4 the loss "
            "swings wildly and the policy drifts whatever β is, and far above it the weights become NaN."
        },
    )
    batch_size: int = field(default=8, metadata={"help": "Preference pairs per step."})
    seed: int = field(default=0, metadata={"help": "Seeds the data order: the same seed gives the same run."})
    chosen_nll: float = field(
        default=1.0,
        metadata={
            "help": "Weight of an extra loss term: the negative log-likelihood of the chosen answer (trl's 'sft' "
            "loss next to 'sigmoid', as RPO does). DPO alone only asks the gap to grow, so it may push the chosen "
            "answer down too (likelihood displacement) and the freed probability goes to answers nobody "
            "preferred. 0 = plain DPO."
        },
    )

    def __post_init__(self) -> None:
        problems = settings_problems(self.beta, self.steps, self.learning_rate, self.batch_size)
        if not (math.isfinite(self.chosen_nll) and self.chosen_nll >= 0):
            problems.append(f"The chosen answer's NLL weight must be a number ≥ 0 (got {self.chosen_nll!r}).")
        if problems:
            raise SettingsError(" ".join(problems))

    @staticmethod
    def help(name: str) -> str:
        return next(f.metadata.get("help", "") for f in fields(DPOSettings) if f.name == name)


def settings_problems(beta: float, steps: int, learning_rate: float, batch_size: int = 8) -> list[str]:
    """Plain-language reasons these values cannot train (empty list: they can)."""
    problems = []
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        problems.append(
            f"β must be a positive number (got {beta!r}): at β = 0 the loss is a constant log 2 and teaches "
            "nothing, and a negative β would reward the rejected answers."
        )
    if not (isinstance(steps, int) and 1 <= steps <= 5000):
        problems.append(f"Steps must be a whole number from 1 to 5000 (got {steps!r}).")
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        problems.append(f"The learning rate must be a positive number (got {learning_rate!r}).")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        problems.append(f"The batch size must be at least 1 (got {batch_size!r}).")
    return problems


# -- the loss, drawn ---------------------------------------------------------------------------------------


def dpo_loss(margin: torch.Tensor, beta: float) -> torch.Tensor:
    """−log σ(β·margin), elementwise; margin = Δ_chosen − Δ_rejected in nats. Same formula as trl's "sigmoid"."""
    return -F.logsigmoid(beta * margin)


def dpo_gradient_weight(margin: torch.Tensor, beta: float) -> torch.Tensor:
    """σ(−β·margin): how hard a pair still pushes. ∂loss/∂margin = −β·σ(−β·margin), so a pair the policy already
    ranks right by a wide margin stops contributing, and a wrongly ranked one pushes with nearly full weight."""
    return torch.sigmoid(-beta * margin)


@dataclass(frozen=True)
class LossCurve:
    beta: float
    margins: list[float]  # Δ_chosen − Δ_rejected, nats
    loss: list[float]  # nats
    gradient_weight: list[float]  # σ(−β·margin), 0..1


def loss_curves(
    betas: Sequence[float], margin_range: tuple[float, float] = (-30.0, 30.0), n: int = 241
) -> list[LossCurve]:
    """The loss and gradient weight against the margin, one curve per β (for the loss chart)."""
    margins = torch.linspace(margin_range[0], margin_range[1], n)
    return [
        LossCurve(
            beta=beta,
            margins=margins.tolist(),
            loss=dpo_loss(margins, beta).tolist(),
            gradient_weight=dpo_gradient_weight(margins, beta).tolist(),
        )
        for beta in betas
    ]


# -- tokenization and log-probs, exactly as trl computes them ------------------------------------------------


def is_chat(pair: Pair) -> bool:
    prompt = pair["prompt"]
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict) and "role" in prompt[0]


def prompt_text(pair: Pair) -> str:
    """The user's question as plain text, without chat markers (for tables and reward functions)."""
    return question_text(pair["prompt"])


def answer_text(answer: Any) -> str:
    if isinstance(answer, list):
        return " ".join(m["content"] for m in answer if m.get("role") == "assistant")
    return str(answer)


def check_pair(pair: Pair) -> None:
    """Raise PairError with a plain message if DPO cannot learn from this pair."""
    if not prompt_text(pair).strip():
        raise PairError("The prompt is empty: DPO compares two answers to the same prompt, so type a prompt.")
    chosen, rejected = answer_text(pair["chosen"]), answer_text(pair["rejected"])
    if not chosen.strip() or not rejected.strip():
        raise PairError("An answer is empty: type both a chosen and a rejected answer.")
    if chosen == rejected:
        raise PairError(
            "The chosen and rejected answers are identical: their log-ratios cancel, the margin is always 0 and "
            "the pair teaches nothing (its loss stays at log 2 ≈ 0.693)."
        )


def _ids(tokenizer: PreTrainedTokenizerBase, text_or_messages: Any, add_generation_prompt: bool = False) -> list[int]:
    if isinstance(text_or_messages, list):
        out = tokenizer.apply_chat_template(
            text_or_messages, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt
        )
        return list(out["input_ids"])
    return list(tokenizer(text=text_or_messages)["input_ids"])


@dataclass(frozen=True)
class TokenizedPair:
    prompt_ids: list[int]
    chosen_ids: list[int]  # answer tokens only, ending with the end-of-text token
    rejected_ids: list[int]


def tokenize_pair(tokenizer: PreTrainedTokenizerBase, pair: Pair) -> TokenizedPair:
    """trl 1.16's DPO preprocessing: plain-text answers get EOS appended, chat pairs go through the chat
    template, and the answer starts where prompt and prompt+answer tokens first differ."""
    if is_chat(pair):
        prompt = _ids(tokenizer, pair["prompt"], add_generation_prompt=True)
        full_chosen = _ids(tokenizer, pair["prompt"] + pair["chosen"])
        full_rejected = _ids(tokenizer, pair["prompt"] + pair["rejected"])
    else:
        eos = tokenizer.eos_token
        chosen, rejected = str(pair["chosen"]), str(pair["rejected"])
        chosen = chosen if chosen.endswith(eos) else chosen + eos
        rejected = rejected if rejected.endswith(eos) else rejected + eos
        prompt = _ids(tokenizer, pair["prompt"])
        full_chosen = _ids(tokenizer, pair["prompt"] + chosen)
        full_rejected = _ids(tokenizer, pair["prompt"] + rejected)
    n = min(_common_prefix(prompt, full_chosen), _common_prefix(prompt, full_rejected))
    return TokenizedPair(prompt[:n], full_chosen[n:], full_rejected[n:])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def generation_prompt_ids(tokenizer: PreTrainedTokenizerBase, pair: Pair) -> list[int]:
    """The tokens a model sees before it answers this pair's prompt."""
    return _ids(tokenizer, pair["prompt"], add_generation_prompt=is_chat(pair))


@dataclass(frozen=True)
class PairScore:
    """Policy and reference log-probs (nats, summed over the answer's tokens) of one pair's two answers."""

    policy_chosen: float
    policy_rejected: float
    reference_chosen: float
    reference_rejected: float
    chosen_tokens: int = 1  # answer length in tokens (with EOS)
    rejected_tokens: int = 1

    @property
    def chosen_logratio(self) -> float:  # Δ_chosen = log π/π_ref of the chosen answer
        return self.policy_chosen - self.reference_chosen

    @property
    def rejected_logratio(self) -> float:
        return self.policy_rejected - self.reference_rejected

    @property
    def margin(self) -> float:
        return self.chosen_logratio - self.rejected_logratio

    def reward_chosen(self, beta: float) -> float:
        """The implicit reward β·log π(y_w|x)/π_ref(y_w|x), as trl logs it in `rewards/chosen`."""
        return beta * self.chosen_logratio

    def reward_rejected(self, beta: float) -> float:
        return beta * self.rejected_logratio

    def loss(self, beta: float) -> float:
        return float(dpo_loss(torch.tensor(self.margin, dtype=torch.float64), beta))

    def gradient_weight(self, beta: float) -> float:
        return float(dpo_gradient_weight(torch.tensor(self.margin, dtype=torch.float64), beta))


def score_pairs(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    batch_size: int = 64,
) -> list[PairScore]:
    """Log-probs of both answers under the policy and the reference, batched; raises PairError on a bad pair."""
    for pair in pairs:
        check_pair(pair)
    tokenized = [tokenize_pair(tokenizer, pair) for pair in pairs]
    limit = context_limit(policy)
    for t in tokenized:
        longest = len(t.prompt_ids) + max(len(t.chosen_ids), len(t.rejected_ids))
        if longest > limit:
            raise PairError(
                f"This pair is {longest} tokens long, but the model reads at most {limit}: shorten the prompt "
                "or the answers."
            )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompts = [t.prompt_ids for t in tokenized] * 2
    answers = [t.chosen_ids for t in tokenized] + [t.rejected_ids for t in tokenized]
    was_training = policy.training
    policy.eval()
    try:
        pol = sequence_logps(policy, prompts, answers, pad, batch_size)
    finally:
        policy.train(was_training)
    ref = sequence_logps(reference, prompts, answers, pad, batch_size) if reference is not policy else pol
    n = len(tokenized)
    return [
        PairScore(
            float(pol[i]),
            float(pol[n + i]),
            float(ref[i]),
            float(ref[n + i]),
            len(tokenized[i].chosen_ids),
            len(tokenized[i].rejected_ids),
        )
        for i in range(n)
    ]


def batch_metrics(scores: Sequence[PairScore], beta: float, chosen_nll: float = 0.0) -> dict[str, float]:
    """The numbers trl logs for one batch, computed from our own log-probs (same names as trl's keys). With
    `chosen_nll`, the loss adds that weight times the chosen answers' NLL per token, as trl's "sft" term does."""
    n = len(scores)
    nll = -sum(s.policy_chosen for s in scores) / sum(s.chosen_tokens for s in scores)  # nats per chosen token
    return {
        "loss": sum(s.loss(beta) for s in scores) / n + chosen_nll * nll,
        "rewards/chosen": sum(s.reward_chosen(beta) for s in scores) / n,
        "rewards/rejected": sum(s.reward_rejected(beta) for s in scores) / n,
        "rewards/margins": sum(beta * s.margin for s in scores) / n,
        "rewards/accuracies": sum(s.reward_chosen(beta) > s.reward_rejected(beta) for s in scores) / n,
        "logps/chosen": sum(s.policy_chosen for s in scores) / n,
        "logps/rejected": sum(s.policy_rejected for s in scores) / n,
    }


# -- training with trl -------------------------------------------------------------------------------------


def dpo_config(settings: DPOSettings, output_dir: str, device: str):
    """trl's DPOConfig for a small model on CPU (the measured settings in docs/ARCHITECTURE.md)."""
    from trl import DPOConfig

    nll = settings.chosen_nll > 0  # DPO plus the chosen answer's NLL (RPO): trl sums the two losses
    return DPOConfig(
        output_dir=output_dir,
        beta=settings.beta,
        loss_type=["sigmoid", "sft"] if nll else ["sigmoid"],
        loss_weights=[1.0, settings.chosen_nll] if nll else None,
        max_steps=settings.steps,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_length=128,  # the tiny models' context
        # The reference is frozen: its log-probs of every pair are computed once, before training (and kept for
        # the next run on the same start model and pairs: reference_logps), not in a forward pass per step.
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=64,
        **demo_trainer_args(device, settings.seed),
    )


# Reference log-probs of pair sets, per shared start model (frozen, so they stay right): a β sweep or the next
# live run on the same pairs skips the reference pass.
_REF_LOGPS: weakref.WeakKeyDictionary[PreTrainedModel, dict[str, tuple[list[float], list[float]]]] = (
    weakref.WeakKeyDictionary()
)
_REF_LOGPS_LOCK = threading.Lock()
_REF_LOGPS_PER_MODEL = 8  # pair sets kept per start model (a few KB each)


def reference_logps(
    start: LoadedModel, reference: PreTrainedModel, pairs: Sequence[Pair]
) -> tuple[list[float], list[float]]:
    """log π_ref(chosen) and log π_ref(rejected) of each pair (nats, summed over the answer), where `reference`
    is a copy of the shared `start.model`. Computed once per start model and pair set, length-sorted in batches
    of 64 (trl's own precompute pads batches in data order: ~3x slower here); trl reads them from the data."""
    digest = hashlib.sha256(json.dumps([dict(p) for p in pairs], sort_keys=True, default=str).encode()).hexdigest()
    with _REF_LOGPS_LOCK:
        cached = _REF_LOGPS.get(start.model, {}).get(digest)
    if cached is not None:
        return cached
    tokenized = [tokenize_pair(start.tokenizer, pair) for pair in pairs]
    tok = start.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    logps = sequence_logps(
        reference,
        [t.prompt_ids for t in tokenized] * 2,
        [t.chosen_ids for t in tokenized] + [t.rejected_ids for t in tokenized],
        pad,
    ).tolist()
    result = (logps[: len(pairs)], logps[len(pairs) :])
    with _REF_LOGPS_LOCK:
        kept = _REF_LOGPS.setdefault(start.model, {})
        kept[digest] = result
        while len(kept) > _REF_LOGPS_PER_MODEL:
            kept.pop(next(iter(kept)))
    return result


@functools.cache
def _trainer_class():
    """trl's DPOTrainer, taking the reference log-probs it precomputes (`precompute_ref_log_probs=True`) from
    `reference_logps` when given: the same numbers (tests/test_dpo.py compares them), kept between runs."""
    from trl import DPOTrainer

    class ReusedReferenceDPOTrainer(DPOTrainer):
        def __init__(self, *args, reference_logps: Callable[[], tuple[list[float], list[float]]] | None, **kwargs):
            self.reference_logps = reference_logps
            super().__init__(*args, **kwargs)

        def _precompute_ref_logps(self, dataset, name, batch_size):
            if self.reference_logps is None or name != "train":
                return super()._precompute_ref_logps(dataset, name, batch_size)
            chosen, rejected = self.reference_logps()
            if len(chosen) != len(dataset):  # trl dropped or added rows: let it compute its own
                return super()._precompute_ref_logps(dataset, name, batch_size)
            return dataset.add_column("ref_chosen_logps", chosen).add_column("ref_rejected_logps", rejected)

    return ReusedReferenceDPOTrainer


@dataclass
class DPORun:
    policy: PreTrainedModel  # trained, eval mode
    reference: PreTrainedModel  # frozen copy of the start model
    settings: DPOSettings
    metrics: list[dict[str, float]]  # trl's on_log dicts, one per step
    train_s: float  # wall time of trainer.train()
    steps_done: int


DPO_MODELS_IN_MEMORY = 2  # policy + frozen reference: no reward model, no value model


def train_dpo(
    start: LoadedModel,
    train_pairs: Sequence[Pair],
    settings: DPOSettings,
    job: Job | None = None,
) -> DPORun:
    """Run trl's DPOTrainer on a private copy of `start`, with another frozen copy as the reference.

    The reference is passed explicitly: with ref_model=None trl reloads it from `config._name_or_path`,
    which for a copied model may not be the folder we started from. Neither copy touches the shared model.
    A `job` receives every logged step and can stop the run; a NaN loss raises DivergedError."""
    from datasets import Dataset
    from transformers import PrinterCallback

    if not train_pairs:
        raise PairError("There are no preference pairs to train on.")
    for pair in train_pairs:
        check_pair(pair)
    policy = trainable_copy(start)
    reference = copy.deepcopy(start.model).eval().requires_grad_(False)
    log = _MetricsLog(job)
    with tempfile.TemporaryDirectory(prefix="llmlab-dpo-") as out:
        trainer = _trainer_class()(
            model=policy,
            reference_logps=lambda: reference_logps(start, reference, train_pairs),
            ref_model=reference,
            args=dpo_config(settings, out, start.device),
            train_dataset=Dataset.from_list([dict(p) for p in train_pairs]),
            processing_class=start.tokenizer,
            callbacks=[log],
        )
        trainer.remove_callback(PrinterCallback)  # keep the server log quiet
        started = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - started
    policy.eval().requires_grad_(False)
    if not all(bool(torch.isfinite(p).all()) for p in policy.parameters()):
        raise DivergedError("The weights became NaN or infinite: the learning rate is too high. Lower it and retry.")
    return DPORun(policy, reference, settings, log.metrics, train_s, trainer.state.global_step)


class _MetricsLog(JobCallback):
    """JobCallback that also keeps its own list (a run without a Job still gets its metrics)."""

    def __init__(self, job: Job | None):
        super().__init__(job or Job("dpo-untracked", lambda job: None))
        self.metrics: list[dict[str, float]] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        # A diverging DPO run can make the weights NaN while the logged loss still reads 0.0 (the
        # margin is ±inf): check the weights themselves (~1 ms for a 1M-parameter model).
        if model is not None and not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise DivergedError(
                f"The weights became NaN or infinite at step {state.global_step}: the learning rate is too high. "
                "Lower it and start again."
            )
        return super().on_step_end(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        control = super().on_log(args, state, control, logs=logs, **kwargs)
        if logs and "train_runtime" not in logs:
            self.metrics.append({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))})
        return control
