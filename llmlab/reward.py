"""The reward model: trl's `RewardTrainer` on pairwise preferences, and scoring answers with it.

RLHF's second stage. A copy of the SFT model gets a one-number head (`AutoModelForSequenceClassification`,
`num_labels=1`); it reads "<|user|>question<|assistant|>answer<|endoftext|>" and outputs a score. Training
pushes the chosen answer's score above the rejected one's with the Bradley–Terry loss
−log σ(score_chosen − score_rejected), the card's formula, which is exactly what trl computes.

    run = train_reward_model(loaded_sft, RewardRunConfig(biased=False))     # ~60 steps, a few seconds
    run.heldout.accuracy                                                     # held-out pairs, e.g. 0.9
    score(run.model, run.tokenizer, [prompt], ["The capital of France is Paris."])   # tensor([2.3])

`load_or_train_reward_model` keeps the default reward models on disk (LLMLAB_CACHE), so the instant KL
sweep and the online-RL demo have one ready without waiting for a training run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import RewardConfig, RewardTrainer

from llmlab.jobs import Job, JobCallback
from llmlab.modeling import CACHE_DIR, LOAD_LOCK, MODELS_DIR, LoadedModel
from llmlab.nexttoken import context_limit
from llmlab.preferences import preference_pairs, preferences_version
from llmlab.trainargs import demo_trainer_args

datasets.disable_progress_bars()
datasets.disable_caching()
logging.getLogger("trl").setLevel(logging.ERROR)
logging.getLogger("transformers.modeling_utils").setLevel(logging.ERROR)  # "score.weight newly initialized"

DATA_VERSION = 6  # bump when the recipe changes (the pairs themselves are named by preferences_version())
SHIPPED_TRAIN_PAIRS = len(preference_pairs(split="train"))


class RewardInputError(ValueError):
    """A setting or typed answer the reward model cannot take; the message says what to change."""


@dataclass(frozen=True)
class RewardRunConfig:
    """One reward-model run. Field help texts are the page's slider help."""

    # On the shipped (on-policy) pairs, with the lowest 2 blocks frozen, measured over seeds 0-2 (score head
    # seeded): 160 steps at 2e-3 reach held-out accuracy 0.76-0.77 in ~4.5 s; 80 steps 0.65-0.72; 40 steps
    # 0.63-0.69. Nothing frozen, 160 steps at 1e-3: 0.72-0.82 in ~6.5 s.
    max_steps: int = field(default=160, metadata={"help": "Optimizer steps (each step sees one batch of pairs)."})
    learning_rate: float = field(
        default=2e-3,
        metadata={"help": "AdamW step size of the body. ~1e-3 suits this 1M model; much higher makes the loss NaN."},
    )
    head_lr_scale: float = field(
        default=10.0,
        metadata={"help": "The new score head learns this many times faster than the pretrained body."},
    )
    batch_size: int = field(default=16, metadata={"help": "Preference pairs per step."})
    train_pairs: int = field(
        default=SHIPPED_TRAIN_PAIRS,
        metadata={"help": "How many preference pairs to learn from (fewer = the card's small-data problem)."},
    )
    biased: bool = field(
        default=False,
        metadata={"help": "Train on the biased labels: the longer (polite-padded) answer wins, right or wrong."},
    )
    eval_every: int = field(default=20, metadata={"help": "Score the held-out pairs every this many steps."})
    frozen_layers: int = field(
        default=2,
        metadata={
            "help": "The embeddings and this many of the lowest transformer blocks keep the SFT model's weights; "
            "only the blocks above and the score head learn. Faster (no backward pass through the frozen "
            "part) at a small cost in accuracy."
        },
    )
    seed: int = 0

    def check(self) -> None:
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise RewardInputError("The learning rate must be a positive number.")
        if self.max_steps < 1 or self.batch_size < 1 or self.train_pairs < 2:
            raise RewardInputError("Steps, batch size and number of pairs must be positive (at least 2 pairs).")
        if self.frozen_layers < 0:
            raise RewardInputError("The number of frozen layers cannot be negative.")


def reward_config(cfg: RewardRunConfig, output_dir: str, device: str = "cpu") -> RewardConfig:
    """trl's config for one run, with the CPU settings measured in docs/ARCHITECTURE.md (no bf16, no checkpointing...)."""
    return RewardConfig(
        output_dir=output_dir,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=min(5, cfg.max_steps // 5),
        weight_decay=0.0,
        max_length=None,
        **demo_trainer_args(device, cfg.seed),
    )


def reward_model_from(loaded: LoadedModel) -> PreTrainedModel:
    """A fresh, trainable reward model: the language model's body with a new one-number score head."""
    with LOAD_LOCK:  # from_pretrained is not thread-safe (llmlab/modeling.py)
        model = AutoModelForSequenceClassification.from_pretrained(
            loaded.source, num_labels=1, trust_remote_code=False, local_files_only=True, dtype=torch.float32
        )
    model.config.pad_token_id = loaded.tokenizer.pad_token_id  # the score is read at the last non-pad token
    return model.to(loaded.device)


def freeze_lower_layers(model: PreTrainedModel, n: int) -> None:
    """Freeze the token/position embeddings and the lowest `n` transformer blocks of `model`'s body (n = 0:
    nothing is frozen). A model with fewer blocks keeps its top block trainable.

    Measured on tiny-sft (4 blocks, 100 steps, 2 seeds): held-out accuracy 0.89-0.93 with nothing frozen,
    0.83-0.88 with 2 blocks frozen, in 12.5 s instead of 17-21 s."""
    if n <= 0:
        return
    body = model.base_model
    n_layers = model.config.num_hidden_layers
    blocks = next(
        (m for m in body.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers),
        None,
    )
    if blocks is None:  # an architecture whose blocks we cannot find: train it whole
        return
    for module in body.modules():
        if isinstance(module, torch.nn.Embedding):
            module.requires_grad_(False)
    for block in list(blocks)[: min(n, n_layers - 1)]:
        block.requires_grad_(False)


def make_reward_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict],
    cfg: RewardRunConfig,
    output_dir: str,
    callbacks: Sequence[TrainerCallback] = (),
) -> RewardTrainer:
    device = next(model.parameters()).device.type
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    head = [p for name, p in trainable if name.startswith("score.")]
    body = [p for name, p in trainable if not name.startswith("score.")]
    # The score head starts from random numbers; the body already knows the facts. One learning rate for both
    # leaves the head crawling (measured: held-out accuracy 0.69 vs 0.82 after 200 steps).
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": cfg.learning_rate}, {"params": head, "lr": cfg.learning_rate * cfg.head_lr_scale}],
        weight_decay=0.0,
        fused=device in ("cpu", "cuda") or None,  # as trl's default optimizer ("adamw_torch_fused")
    )
    trainer = RewardTrainer(
        model=model,
        args=reward_config(cfg, output_dir, device),
        optimizers=(optimizer, None),  # trl builds the warm-up schedule from the config on top of it
        train_dataset=datasets.Dataset.from_list(list(rows)),
        processing_class=copy.deepcopy(tokenizer),  # trl sets padding on it; the shared one must stay untouched
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # metrics go to the job, not to the server's stdout
    return trainer


def _scoring_text(prompt: str, completion: str, eos: str) -> str:
    """Exactly what RewardTrainer trained on: prompt + answer + one end-of-text token."""
    completion = completion.removesuffix(eos)
    return prompt + completion + eos


@torch.inference_mode()
def score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[str],
    batch_size: int = 64,
) -> torch.Tensor:
    """Reward-model scores (N,) for prompt/completion text pairs (float32 on the CPU).

    Texts longer than the context keep their last tokens (the score is read at the final one). Padding is
    done here, not by the tokenizer: a shared fast tokenizer must not have its padding state mutated."""
    if len(prompts) != len(completions):
        raise RewardInputError("score() needs one prompt per completion.")
    texts = [_scoring_text(p, c, tokenizer.eos_token) for p, c in zip(prompts, completions, strict=True)]
    if not texts:
        return torch.zeros(0)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    limit = context_limit(model)
    pad = model.config.pad_token_id
    # Each distinct text once, in order of length, so a batch holds texts of about one length (little padding).
    unique = list(dict.fromkeys(texts))
    encoded = {t: tokenizer(t, add_special_tokens=False)["input_ids"][-limit:] for t in unique}
    unique.sort(key=lambda t: len(encoded[t]))
    scores: dict[str, float] = {}
    for start in range(0, len(unique), batch_size):
        batch = unique[start : start + batch_size]
        rows = [encoded[t] for t in batch]
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)  # (B, T)
        attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)  # (B, T)
        values = model(input_ids=input_ids, attention_mask=attention).logits[:, 0].float().cpu()  # (B,)
        scores.update(zip(batch, values.tolist(), strict=True))
    model.train(was_training)
    return torch.tensor([scores[t] for t in texts])


def bradley_terry_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """The card's reward-model loss, mean over pairs: −log σ(score_chosen − score_rejected)."""
    return -F.logsigmoid(chosen_scores - rejected_scores).mean()


def preference_probability(score_a: float, score_b: float) -> float:
    """P(A preferred over B) = σ(s_A − s_B), the Bradley–Terry model a reward model is trained with (written
    with tanh, which does not overflow for far-apart scores)."""
    return 0.5 * (1.0 + math.tanh((score_a - score_b) / 2))


@dataclass(frozen=True)
class PairScores:
    """A reward model's scores on a set of preference pairs."""

    chosen: tuple[float, ...]
    rejected: tuple[float, ...]

    @property
    def accuracy(self) -> float:
        """Fraction of pairs where the chosen answer scores higher (ties count as wrong)."""
        if not self.chosen:
            return float("nan")
        return sum(c > r for c, r in zip(self.chosen, self.rejected, strict=True)) / len(self.chosen)

    @property
    def loss(self) -> float:
        return float(bradley_terry_loss(torch.tensor(self.chosen), torch.tensor(self.rejected)))

    @property
    def margin(self) -> float:
        return sum(c - r for c, r in zip(self.chosen, self.rejected, strict=True)) / max(1, len(self.chosen))


def score_pairs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: Sequence[dict]) -> PairScores:
    prompts = [r["prompt"] for r in rows]
    both = score(model, tokenizer, prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
    n = len(rows)
    return PairScores(chosen=tuple(both[:n].tolist()), rejected=tuple(both[n:].tolist()))


@dataclass
class RewardRun:
    """A trained reward model and how well it ranks held-out pairs."""

    model: PreTrainedModel  # eval mode, frozen after training
    tokenizer: PreTrainedTokenizerBase
    config: RewardRunConfig
    heldout: PairScores  # test pairs labelled like the training set (biased labels if biased)
    heldout_true: PairScores  # the same test answers labelled by correctness (the unbiased set)
    seconds: float
    source: str  # the model it started from


@dataclass(frozen=True)
class HeldOutScores:
    """The held-out pairs' scores at one step of a reward-model run (the page's histogram)."""

    step: int
    chosen: tuple[float, ...]
    rejected: tuple[float, ...]


class _HeldOutProbe(TrainerCallback):
    """Every `every` steps: held-out accuracy as a metric row, and the score lists as a note (histogram)."""

    def __init__(self, job: Job, tokenizer: PreTrainedTokenizerBase, rows: Sequence[dict], every: int):
        self.job, self.tokenizer, self.rows, self.every = job, tokenizer, rows, max(1, every)
        self.last_step = -1
        self.last: PairScores | None = None  # the scores of the last probe: the final model's, after training

    def probe(self, step: int, model: PreTrainedModel) -> None:
        scores = self.last = score_pairs(model, self.tokenizer, self.rows)
        self.job.log(step=step, heldout_accuracy=scores.accuracy, heldout_loss=scores.loss)
        self.job.note(HeldOutScores(step, scores.chosen, scores.rejected))
        self.last_step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.probe(state.global_step, model)
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if state.global_step != self.last_step and state.global_step > 0:  # stopped between probes
            self.probe(state.global_step, model)
        return control


def train_reward_model(
    loaded: LoadedModel, cfg: RewardRunConfig, job: Job | None = None, pairs: Sequence[dict] | None = None
) -> RewardRun:
    """Train a reward model from `loaded` (the SFT model) with trl's RewardTrainer.

    With a `job`, every trl log line (loss, accuracy, margin) and the held-out accuracy go to `job.metrics`,
    score lists to `job.notes`, and the run stops when the job is asked to. A NaN loss raises DivergedError.
    `pairs` (trl prompt/chosen/rejected rows, e.g. a room's votes) replaces the shipped training pairs; the
    held-out pairs stay the shipped test split, so runs on different data are scored alike."""
    cfg.check()
    rows = list(pairs) if pairs is not None else preference_pairs(cfg.seed, cfg.biased, "train")
    if len(rows) < 2:
        raise RewardInputError("A reward model needs at least 2 preference pairs to learn from.")
    rows = random.Random(cfg.seed).sample(rows, min(cfg.train_pairs, len(rows)))  # fewer pairs: a random subset
    test = preference_pairs(cfg.seed, cfg.biased, "test")
    start = time.perf_counter()
    model = reward_model_from(loaded)
    score_head = getattr(model, "score", None)
    if isinstance(score_head, torch.nn.Linear):  # the new head from the run's seed, not from torch's global RNG
        with torch.no_grad():
            std = getattr(model.config, "initializer_range", 0.02)
            score_head.weight.normal_(0.0, std, generator=torch.Generator().manual_seed(cfg.seed))
    freeze_lower_layers(model, cfg.frozen_layers)
    job = job or Job("reward-model", lambda job: None)  # not started: it only collects the metrics
    probe = _HeldOutProbe(job, loaded.tokenizer, test, cfg.eval_every)
    with tempfile.TemporaryDirectory(prefix="llmlab-rm-") as out:
        trainer = make_reward_trainer(model, loaded.tokenizer, rows, cfg, out, [JobCallback(job), probe])
        trainer.train()
    model.eval().requires_grad_(False)
    return _scored_run(model, loaded, cfg, time.perf_counter() - start, heldout=probe.last)


def _scored_run(
    model: PreTrainedModel,
    loaded: LoadedModel,
    cfg: RewardRunConfig,
    seconds: float,
    heldout: PairScores | None = None,
) -> RewardRun:
    """A trained or loaded reward model with its held-out scores: on the test pairs of its own labels (given
    as `heldout` when training's last probe scored them already), and on the honest labels (the same pairs
    when it was trained on honest labels: scored once)."""
    if heldout is None:
        heldout = score_pairs(model, loaded.tokenizer, preference_pairs(cfg.seed, cfg.biased, "test"))
    heldout_true = (
        score_pairs(model, loaded.tokenizer, preference_pairs(cfg.seed, False, "test")) if cfg.biased else heldout
    )
    return RewardRun(
        model=model,
        tokenizer=loaded.tokenizer,
        config=cfg,
        heldout=heldout,
        heldout_true=heldout_true,
        seconds=seconds,
        source=loaded.source,
    )


# -- a ready reward model for the sweep and the RL demo ---------------------------------------------------

_cache_lock = threading.Lock()


BUNDLED_REWARD_DIR = MODELS_DIR / "reward-models"  # shipped with the repo (scripts/train_reward.py), read-only


def reward_model_key(loaded: LoadedModel, cfg: RewardRunConfig) -> str:
    """Names the reward model by what it is: the policy's weights (their bytes, so a fresh checkout of the
    bundled model finds the shipped reward model), the settings that change training, and the data version."""
    weights = Path(loaded.source) / "model.safetensors"
    stamp = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else loaded.source
    settings = {k: v for k, v in asdict(cfg).items() if k != "eval_every"}  # probing does not change the model
    text = json.dumps({"weights": stamp, "cfg": settings, "data": [DATA_VERSION, preferences_version()]})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load_saved(folder: Path, loaded: LoadedModel, cfg: RewardRunConfig) -> RewardRun:
    start = time.perf_counter()
    with LOAD_LOCK:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, trust_remote_code=False, local_files_only=True, dtype=torch.float32
        )
    model.to(loaded.device).eval().requires_grad_(False)
    return _scored_run(model, loaded, cfg, time.perf_counter() - start)


def save_reward_model(run: RewardRun, folder: Path) -> None:
    """Write `run.model` to `folder` atomically: a half-written folder is never taken for a finished one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + ".partial")
    run.model.save_pretrained(tmp)
    (tmp / "reward_run.json").write_text(
        json.dumps(
            {
                "config": asdict(run.config),
                "policy": Path(run.source).name,
                "heldout_accuracy": run.heldout.accuracy,
                "heldout_true_accuracy": run.heldout_true.accuracy,
                "train_seconds": round(run.seconds, 1),
            },
            indent=2,
        )
    )
    tmp.replace(folder)


def reward_model_folder(loaded: LoadedModel, cfg: RewardRunConfig) -> Path:
    """Where (`loaded`, `cfg`)'s reward model is or will be: the bundled copy if the repo ships it, else the
    disk cache (LLMLAB_CACHE)."""
    key = reward_model_key(loaded, cfg)
    bundled = BUNDLED_REWARD_DIR / key
    return bundled if (bundled / "config.json").is_file() else CACHE_DIR / "reward-models" / key


def load_or_train_reward_model(loaded: LoadedModel, cfg: RewardRunConfig) -> RewardRun:
    """The reward model for (`loaded`, `cfg`): the bundled copy or the disk cache, else trained once and
    saved to the cache."""
    folder = reward_model_folder(loaded, cfg)
    with _cache_lock:
        if (folder / "config.json").is_file():
            return _load_saved(folder, loaded, cfg)
        run = train_reward_model(loaded, cfg)
        save_reward_model(run, folder)
        return run
