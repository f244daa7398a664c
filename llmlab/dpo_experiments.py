"""The DPO page's experiments, each a background `Job`'s work function, and the tables and chart points built
from their results (the page only draws them):

- `dpo_work`: one live run, then the policy against the start model on held-out pairs (`DPOOutcome`, kept as a
  `LiveSummary`);
- `sweep_work`: one run per β, same seed and pairs (a `SweepPoint` note per β; `sweep_rows`, `sweep_csv`);
- `coverage_work`: DPO on some kinds of question only, every kind scored (the offline limit; `question_kind`);
- `annotator_work`: one run per labeller, and whose taste each policy learned (`LabellerResult` notes);
- `rlhf_frontier_work` / `rlhf_point`: the RLHF page's pipeline scored like the DPO policies (`FrontierPoint`
  notes), and `Policies`: every policy of the session on one reward-vs-KL chart, with what each cost.

Training is `llmlab.dpo`; scoring is `llmlab.policy_eval`, the same for every method.

    job = Job("dpo-sweep", sweep_work(start, train_pairs, heldout_pairs, DPOSettings(steps=150), (0.1, 1.0)))
    job.start().join();  job.notes_of(SweepPoint)   # one point per β: held-out accuracy, KL, true reward
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, NamedTuple

from transformers import PreTrainedModel

from llmlab.dpo import (
    DPO_MODELS_IN_MEMORY,
    SWEEP_BETAS,
    DPORun,
    DPOSettings,
    Pair,
    PairError,
    PairScore,
    SettingsError,
    answer_text,
    prompt_text,
    score_pairs,
    settings_problems,
    train_dpo,
)
from llmlab.jobs import Job, TaggedJob
from llmlab.modeling import LoadedModel
from llmlab.policy_eval import (
    RewardFn,
    SplitReport,
    compare_on,
    drift_from_reference,
    greedy_texts,
    heldout_accuracy,
    unique_prompts,
)
from llmlab.preferences import find_question

# -- one live run ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveSummary:
    """What the other tabs keep of a finished live run (its numbers, not its models)."""

    beta: float
    steps: int  # steps actually run
    learning_rate: float
    kl: float  # KL(π‖π_ref) on answers sampled for the held-out questions, nats per answer
    reward: float | None  # share of those answers that are right
    reference_reward: float | None  # ... of the start model's answers
    train_s: float
    wall_s: float  # training plus evaluation


@dataclass
class DPOOutcome:
    """A finished live run: the trained policy (kept for the other tabs) and its before/after evaluation."""

    run: DPORun
    heldout: SplitReport  # policy vs start model on held-out pairs
    answers: list[dict[str, str]]  # question, before, after (greedy)
    wall_s: float  # the whole job: training plus evaluation

    def summary(self) -> LiveSummary:
        return LiveSummary(
            beta=self.run.settings.beta,
            steps=self.run.steps_done,
            learning_rate=self.run.settings.learning_rate,
            kl=self.heldout.kl,
            reward=self.heldout.reward_after,
            reference_reward=self.heldout.reward_before,
            train_s=self.run.train_s,
            wall_s=self.wall_s,
        )


def dpo_work(
    start: LoadedModel,
    train_pairs: Sequence[Pair],
    heldout_pairs: Sequence[Pair],
    settings: DPOSettings,
    reward_fn: RewardFn | None = None,
    answer_questions: int = 6,
    asked: Sequence[Pair] | None = None,
) -> Callable[[Job], DPOOutcome]:
    """The live run as a Job's work function: train, then compare policy and start model on held-out pairs."""

    def work(job: Job) -> DPOOutcome:
        started = time.perf_counter()
        run = train_dpo(start, train_pairs, settings, job)
        tok = start.tokenizer
        heldout = compare_on("held-out pairs", run.policy, run.reference, tok, heldout_pairs, reward_fn, asked=asked)
        shown = unique_prompts(heldout_pairs)[:answer_questions]
        answers = [
            {"question": prompt_text(p), "before (start model)": b, "after DPO": a}
            for p, b, a in zip(
                shown, greedy_texts(run.reference, tok, shown), greedy_texts(run.policy, tok, shown), strict=True
            )
        ]
        return DPOOutcome(run=run, heldout=heldout, answers=answers, wall_s=time.perf_counter() - started)

    return work


# -- what goes wrong: off-policy pairs and likelihood displacement -----------------------------------------


@dataclass(frozen=True)
class DiagnosisRun:
    """One DPO run of the diagnosis: which pairs, with or without the chosen answers' NLL term, and the result."""

    pairs: str  # the data set's name
    chosen_nll: float  # 0: plain DPO
    reward_before: float  # right answers sampled from the start model (all asked questions)
    reward_after: float  # ... from the trained policy
    kl: float  # KL(π ‖ π_ref) on those answers, nats per answer
    logp_chosen: tuple[float, float]  # mean log π(chosen) of its training pairs: (start, trained), nats
    logp_rejected: tuple[float, float]  # mean log π(rejected) of its training pairs


def diagnosis_work(
    start: LoadedModel,
    datasets: Mapping[str, Sequence[Pair]],
    heldout_pairs: Sequence[Pair],
    settings: DPOSettings,
    reward_fn: RewardFn,
    asked: Sequence[Pair] | None = None,
    nll_weights: Sequence[float] = (0.0, 1.0),
) -> Callable[[Job], list[DiagnosisRun]]:
    """Why DPO can make a model less correct, measured: one run per data set and NLL weight (same seed, steps and
    β), each scored on the same questions. Hand-written pairs are off-policy (answers the model would never
    write); plain DPO only widens the chosen-rejected gap, so it can push the chosen answers down too (likelihood
    displacement). A `DiagnosisRun` note per run; its steps are logged with `run`."""
    plan = [(name, pairs, nll) for name, pairs in datasets.items() for nll in nll_weights]

    def work(job: Job) -> list[DiagnosisRun]:
        runs = []
        for index, (name, pairs, nll) in enumerate(plan):
            if job.should_stop:
                break
            run = train_dpo(start, pairs, replace(settings, chosen_nll=nll), TaggedJob(job, run=index))
            if job.should_stop and run.steps_done < settings.steps:
                break
            report = compare_on(name, run.policy, start.model, start.tokenizer, heldout_pairs, reward_fn, asked=asked)
            scores = score_pairs(run.policy, start.model, start.tokenizer, pairs)
            n = len(scores)
            result = DiagnosisRun(
                name,
                nll,
                report.reward_before,
                report.reward_after,
                report.kl,
                (sum(s.reference_chosen for s in scores) / n, sum(s.policy_chosen for s in scores) / n),
                (sum(s.reference_rejected for s in scores) / n, sum(s.policy_rejected for s in scores) / n),
            )
            job.note(result)
            runs.append(result)
        return runs

    return work


# -- the offline limit -------------------------------------------------------------------------------------


def question_kind(pair: Pair) -> str:
    """Which kind of question a pair answers: capital, language or continent ("other" for a question not in the
    preference data)."""
    question = find_question(pair["prompt"])
    return question.kind if question is not None else "other"


@dataclass
class CoverageOutcome:
    """A run trained only on some groups of questions, scored on held-out pairs of every group."""

    run: DPORun
    covered: tuple[str, ...]  # the groups the training pairs came from
    train_pairs: int
    reports: list[SplitReport]  # one per group, named after it


def coverage_work(
    start: LoadedModel,
    train_pairs: Sequence[Pair],
    eval_pairs: Sequence[Pair],
    settings: DPOSettings,
    group_of: Callable[[Pair], str],
    covered: Sequence[str],
    reward_fn: RewardFn | None = None,
    asked: Sequence[Pair] | None = None,
) -> Callable[[Job], CoverageOutcome]:
    """The offline limit as a Job's work function: DPO on the pairs of the `covered` groups only (e.g. capital
    questions), then held-out accuracy, KL and true reward per group. DPO never samples its own answers, so
    on groups its pairs do not reach nothing steers it: whatever moves there is a side effect."""
    subset = [p for p in train_pairs if group_of(p) in covered]
    if not subset:
        raise PairError("No training pair is about the chosen kind of question: pick at least one kind.")

    def work(job: Job) -> CoverageOutcome:
        run = train_dpo(start, subset, settings, job)
        groups = list(dict.fromkeys(group_of(p) for p in eval_pairs))
        reports = [
            compare_on(
                group,
                run.policy,
                run.reference,
                start.tokenizer,
                [p for p in eval_pairs if group_of(p) == group],
                reward_fn,
                asked=None if asked is None else [a for a in asked if group_of(a) == group],
            )
            for group in groups
        ]
        return CoverageOutcome(run=run, covered=tuple(covered), train_pairs=len(subset), reports=reports)

    return work


# -- the β sweep -------------------------------------------------------------------------------------------

# Pairs per step in the β sweep: half the live run's 8, so 5 β × 150 steps take ~70 s instead of ~100 s on 2
# cores. Adam's step size does not depend on the batch, so the drift per step (what β limits) is alike;
# measured at 150 steps, lr 2e-4: KL 3.75 / 3.25 / 3.07 / 2.22 / 1.78 nats for β 0.01 / 0.05 / 0.1 / 0.5 / 1
# (batch 8: 4.71 / 5.23 / 4.37 / 1.84 / 2.04, noisier and not monotone).
SWEEP_BATCH_SIZE = 4


@dataclass(frozen=True)
class SweepPoint:
    beta: float
    steps: int  # steps actually run
    learning_rate: float
    seed: int
    heldout_accuracy: float  # share of held-out pairs the policy's implicit reward ranks right
    reference_accuracy: float  # the same for the start model (0.5: it ties every pair)
    kl: float  # KL(π‖π_ref), nats per sampled answer
    reward: float | None  # mean true reward of answers sampled from the policy
    reference_reward: float | None  # ... and from the start model
    final_loss: float
    logp_chosen_start: float  # trl's logps/chosen at the first and last step (nats per answer)
    logp_chosen_end: float
    train_s: float
    wall_s: float  # training + evaluation of this β
    length: float = 0.0  # mean length of the policy's sampled answers, tokens
    reference_length: float = 0.0  # ... and of the start model's

    def row(self) -> dict[str, Any]:
        return asdict(self)


def sweep_work(
    start: LoadedModel,
    train_pairs: Sequence[Pair],
    heldout_pairs: Sequence[Pair],
    settings: DPOSettings,
    betas: Sequence[float] = SWEEP_BETAS,
    reward_fn: RewardFn | None = None,
    asked: Sequence[Pair] | None = None,
) -> Callable[[Job], list[SweepPoint]]:
    """The β sweep as a Job's work function: one DPO run per β, same seed, data and steps.

    Each step is logged with its β (`job.log(beta=..., step=..., loss=...)`) so the page can show progress;
    each finished β is a `SweepPoint` note (`job.note(point)`). Stop ends the sweep after the current step."""
    for beta in betas:  # fail before any training, not at the third β
        problems = settings_problems(beta, settings.steps, settings.learning_rate, settings.batch_size)
        if problems:
            raise SettingsError(" ".join(problems))

    def work(job: Job) -> list[SweepPoint]:
        points: list[SweepPoint] = []
        for beta in betas:
            if job.should_stop:
                break
            started = time.perf_counter()
            run = train_dpo(start, train_pairs, replace(settings, beta=beta), TaggedJob(job, beta=beta))
            if job.should_stop and run.steps_done < settings.steps:
                break  # a half-trained β would be a misleading point
            report = compare_on(
                "held-out pairs", run.policy, run.reference, start.tokenizer, heldout_pairs, reward_fn, asked=asked
            )
            point = SweepPoint(
                beta=beta,
                steps=run.steps_done,
                learning_rate=settings.learning_rate,
                seed=settings.seed,
                heldout_accuracy=report.accuracy_after,
                reference_accuracy=report.accuracy_before,
                kl=report.kl,
                reward=report.reward_after,
                reference_reward=report.reward_before,
                length=report.length[1],
                reference_length=report.length[0],
                final_loss=run.metrics[-1]["loss"],
                logp_chosen_start=run.metrics[0]["logps/chosen"],
                logp_chosen_end=run.metrics[-1]["logps/chosen"],
                train_s=run.train_s,
                wall_s=time.perf_counter() - started,
            )
            points.append(point)
            job.note(point)
        return points

    return work


def sweep_rows(points: Sequence[SweepPoint]) -> list[dict[str, Any]]:
    """The sweep results table: one row per β, formatted for reading (the CSV has every field, unformatted)."""
    return [
        {
            "β": p.beta,
            "steps": p.steps,
            "lr": p.learning_rate,
            "held-out accuracy": f"{p.heldout_accuracy:.0%}",
            "KL (nats)": round(p.kl, 3),
            "right answers": "" if p.reward is None else f"{p.reward:.0%}",
            "answer length (tokens)": round(p.length, 1),
            "log π(chosen) start → end": f"{p.logp_chosen_start:.1f} → {p.logp_chosen_end:.1f}",
            "train s": round(p.train_s, 1),
        }
        for p in points
    ]


def sweep_csv(points: Sequence[SweepPoint]) -> str:
    """The sweep as CSV text, one row per β (for the page's download button)."""
    out = io.StringIO()
    names = [f.name for f in fields(SweepPoint)]
    writer = csv.DictWriter(out, fieldnames=names)
    writer.writeheader()
    for point in points:
        writer.writerow(point.row())
    return out.getvalue()


# -- a single annotator ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabellerResult:
    """How a policy ranks held-out pairs after DPO on one labeller's picks (implicit rewards, ties count ½)."""

    name: str
    agrees_right: float  # share of pairs where the policy prefers the right answer
    agrees_longer: float  # share of pairs (of unequal length) where it prefers the longer answer
    reward: float | None  # share of sampled answers that are right (true reward)
    steps: int
    train_s: float
    examples: list[str]  # a few greedy answers


def longer_preference(scores: Sequence[PairScore], pairs: Sequence[Pair]) -> float:
    """Share of pairs whose implicit reward favours the longer answer (pairs of equal length are skipped)."""
    wins, n = 0.0, 0
    for score, pair in zip(scores, pairs, strict=True):
        chosen, rejected = len(answer_text(pair["chosen"])), len(answer_text(pair["rejected"]))
        if chosen == rejected:
            continue
        margin = score.margin if chosen > rejected else -score.margin  # > 0: the longer one is favoured
        wins += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
        n += 1
    return wins / max(1, n)


def annotator_work(
    start: LoadedModel,
    labellers: Mapping[str, Sequence[Pair]],
    eval_pairs: Sequence[Pair],
    settings: DPOSettings,
    reward_fn: RewardFn | None = None,
    asked: Sequence[Pair] | None = None,
) -> Callable[[Job], list[LabellerResult]]:
    """One DPO run per labeller (same answer pairs and settings; only who picked "chosen" differs), then how
    each policy ranks held-out pairs whose `chosen` is the right answer. The first result is the start model."""
    prompts = list(asked) if asked is not None else unique_prompts(eval_pairs)

    def measure(name: str, model: PreTrainedModel, steps: int, train_s: float) -> LabellerResult:
        scores = score_pairs(model, start.model, start.tokenizer, eval_pairs)
        reward = drift_from_reference(model, start.model, start.tokenizer, prompts, reward_fn).reward
        examples = greedy_texts(model, start.tokenizer, prompts[:4])
        return LabellerResult(
            name, heldout_accuracy(scores), longer_preference(scores, eval_pairs), reward, steps, train_s, examples
        )

    def work(job: Job) -> list[LabellerResult]:
        results = [measure(f"{start.name} (start)", start.model, 0, 0.0)]
        for index, (name, pairs) in enumerate(labellers.items()):
            if job.should_stop:
                break
            run = train_dpo(start, pairs, settings, TaggedJob(job, labeller=index))
            if job.should_stop and run.steps_done < settings.steps:
                break
            result = measure(name, run.policy, run.steps_done, run.train_s)
            results.append(result)
            job.note(result)
        return results

    return work


# -- DPO vs RLHF on one frontier ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontierPoint:
    """One trained policy on the reward-vs-KL plane, with what it cost to get there."""

    method: str  # "DPO" or "RLHF (reward model + RLOO)"
    beta: float  # DPO's β, or RLHF's KL coefficient: the same β of max E[r] − β·KL in both derivations
    kl: float  # KL(π‖π_ref) on answers sampled for held-out pairs' prompts, nats per answer
    reward: float | None  # share of those answers that are right (true reward)
    reference_reward: float | None
    train_s: float  # wall time of the policy's own training
    extra_s: float  # wall time of what it needed first (RLHF: the reward model), 0 for DPO
    models_in_memory: int  # models held while training


def rlhf_models_in_memory(beta: float, reward_model: bool) -> int:
    """Models RLOO holds while training: the policy, a frozen reference when β > 0 (for the KL penalty), and
    the reward model when the reward is learned (RLOO needs no value model, unlike PPO)."""
    return 1 + (beta > 0) + reward_model


def rlhf_point(
    run: Any,
    start: LoadedModel,
    heldout_pairs: Sequence[Pair],
    reward_fn: RewardFn | None,
    extra_s: float = 0.0,
    asked: Sequence[Pair] | None = None,
) -> FrontierPoint:
    """An `llmlab.rlhf.RLRun` (the RLHF page's online runs) scored exactly like the DPO policies."""
    report = compare_on(
        "held-out pairs", run.policy, start.model, start.tokenizer, heldout_pairs, reward_fn, asked=asked
    )
    learned = run.config.reward == "reward model"
    return FrontierPoint(
        method="RLHF (reward model + RLOO)" if learned else "RL on the true reward (RLOO)",
        beta=run.config.beta,
        kl=report.kl,
        reward=report.reward_after,
        reference_reward=report.reward_before,
        train_s=run.seconds,
        extra_s=extra_s,
        models_in_memory=rlhf_models_in_memory(run.config.beta, learned),
    )


def rlhf_frontier_work(
    start: LoadedModel,
    heldout_pairs: Sequence[Pair],
    betas: Sequence[float],
    rl_steps: int = 30,
    reward_fn: RewardFn | None = None,
    asked: Sequence[Pair] | None = None,
) -> Callable[[Job], list[FrontierPoint]]:
    """The RLHF page's pipeline at several β, scored exactly like the DPO runs: train a reward model on the same
    preference pairs (trl RewardTrainer), then online RL from the same start model (trl RLOOTrainer, KL
    coefficient β), then KL and true reward on the same held-out prompts with the same estimator."""
    from llmlab.reward import RewardRunConfig, train_reward_model
    from llmlab.rlhf import RLRunConfig, run_rl

    configs = [RLRunConfig(beta=beta, max_steps=rl_steps) for beta in betas]
    for config in configs:
        config.check()  # fail before any training

    def work(job: Job) -> list[FrontierPoint]:
        started = time.perf_counter()
        reward_run = train_reward_model(start, RewardRunConfig())
        reward_s = time.perf_counter() - started
        points: list[FrontierPoint] = []
        for config in configs:
            if job.should_stop:
                break
            run = run_rl(start, reward_run, config, job)
            if job.should_stop and len(run.history) < config.max_steps:
                break
            point = rlhf_point(run, start, heldout_pairs, reward_fn, extra_s=reward_s, asked=asked)
            points.append(point)
            job.note(point)
        return points

    return work


# -- every policy of the session on one frontier -----------------------------------------------------------


class ChartPoint(NamedTuple):
    """One marker of the reward-vs-KL chart (`llmlab.plots.reward_kl_frontier`)."""

    series: str  # one colour and line per series
    label: str
    kl: float
    reward: float


@dataclass(frozen=True)
class Policies:
    """This session's trained policies that the DPO vs RLHF tab compares: the β sweep's and the live runs' (DPO),
    this page's RLHF runs, and the RLHF page's online runs scored the same way."""

    sweep: Sequence[SweepPoint] = ()
    live: Sequence[LiveSummary] = ()
    rlhf: Sequence[FrontierPoint] = ()
    rlhf_page: Sequence[FrontierPoint] = ()

    def chart_points(self, start_name: str) -> list[ChartPoint]:
        """Every policy whose answers were scored for correctness, then the start model at KL 0 (none when there
        is no policy: a lone start point says nothing)."""
        points = [ChartPoint("DPO", f"β={p.beta:g}", p.kl, p.reward) for p in self.sweep if p.reward is not None]
        points += [ChartPoint("DPO", f"β={r.beta:g} (live)", r.kl, r.reward) for r in self.live if r.reward is not None]
        points += [ChartPoint(p.method, f"β={p.beta:g}", p.kl, p.reward) for p in self.rlhf if p.reward is not None]
        points += [
            ChartPoint(f"{p.method}, RLHF page", f"β={p.beta:g}", p.kl, p.reward)
            for p in self.rlhf_page
            if p.reward is not None
        ]
        if not points:
            return []
        references = [p.reference_reward for p in [*self.sweep, *self.rlhf, *self.rlhf_page]]
        references += [r.reference_reward for r in self.live]
        reference = next((r for r in references if r is not None), None)
        if reference is not None:
            points.append(ChartPoint(f"{start_name} (start)", "start", 0.0, reference))
        return points

    def cost_rows(self) -> list[dict[str, Any]]:
        """One row per method: mean wall time per policy, what it needed first, the models it held in memory."""
        dpo_walls = [p.train_s for p in self.sweep] + [r.train_s for r in self.live]
        rows: list[dict[str, Any]] = []
        if dpo_walls:
            rows.append(
                {
                    "method": "DPO (trl DPOTrainer)",
                    "policies": len(dpo_walls),
                    "training per policy (s)": round(sum(dpo_walls) / len(dpo_walls), 1),
                    "needed first (s)": "nothing",
                    "models in memory while training": f"{DPO_MODELS_IN_MEMORY}: policy + frozen reference",
                    "samples answers while training": "no (offline pairs)",
                }
            )
        rl = [*self.rlhf, *self.rlhf_page]
        for method in dict.fromkeys(p.method for p in rl):
            runs = [p for p in rl if p.method == method]
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
        return rows
