"""Training on the room's votes (the RLHF and DPO pages' "Vote as a room" tab): the votes as training data, and
two background-job work functions that train on them and on as many shipped pairs, both scored on the shipped
held-out pairs, so only who labelled the pairs differs.

- `room_preferences(store, voter_id)`: trl's prompt/chosen/rejected rows from each voter's latest A/B vote per
  pair, everyone's or one voter's (the single annotator); ties and both-bad votes are left out;
- `room_reward_work`: a reward model (trl RewardTrainer) on the votes, then on shipped pairs;
- `room_dpo_work`: DPO (trl DPOTrainer) on the votes, then on shipped pairs (`llmlab.dpo_experiments.dpo_work`);
- `room_ratings` / `votes_to_ratings`: the same votes as KTO's single rated answers (an A/B vote: the winner 👍,
  the loser 👎; a both-bad vote: two 👎, which no pair can hold; a tie: nothing), and `room_kto_work`: KTO (trl
  KTOTrainer) on them beside DPO on the A/B votes, scored like the DPO page's KTO tab (`llmlab.kto`);
- `sampled_pairs`: a ballot of two answers per question sampled from the SFT model.

The vote store itself is `llmlab.votes`, which never imports torch.

    room = room_preferences(store)                      # everyone's votes; .enough: at least 8 A/B votes
    job = Job("crowd-dpo", room_dpo_work(start, room, DPOSettings(steps=50))).start()
    ratings = room_ratings(store)                       # KTO rows; .enough: at least 16 rated answers
    job = Job("crowd-kto", room_kto_work(start, ratings, KTOSettings(), DPOSettings())).start()
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from llmlab import dpo_experiments, kto
from llmlab.dpo import DPOSettings, train_dpo
from llmlab.jobs import Job, TaggedJob
from llmlab.modeling import LoadedModel
from llmlab.nexttoken import sample_answers
from llmlab.preferences import asked, preference_pairs, true_reward
from llmlab.reward import RewardRunConfig, train_reward_model
from llmlab.votes import Pair, StoredVote, VoteStore, VoteStoreError, make_pair

MIN_TRAINING_PAIRS = 8  # fewer A/B votes than this: the training buttons explain instead of training
MIN_RATINGS = 16  # fewer rated answers than this: the KTO button explains instead of training
SHIPPED = "shipped pairs (as many)"


class NotEnoughVotesError(VoteStoreError):
    """Too few A/B votes to train on; the message says how many there are and how many are needed."""


@dataclass(frozen=True)
class RoomPreferences:
    """The votes a training run learns from: trl rows from each voter's latest A/B vote per pair."""

    rows: list[dict[str, str]]  # {"prompt", "chosen", "rejected"}
    votes: int  # latest votes considered (one per voter and pair)
    left_out: int  # of those, ties and both-bad votes: they say neither answer is better, so no pair
    voter_id: str | None  # one voter's votes only (single annotator), or None for everyone's

    @property
    def name(self) -> str:
        return "the room's votes" if self.voter_id is None else f"{self.voter_id}'s votes (single annotator)"

    @property
    def enough(self) -> bool:
        return len(self.rows) >= MIN_TRAINING_PAIRS

    def check(self) -> None:
        if not self.enough:
            who = "this voter has" if self.voter_id else "the room has"
            raise NotEnoughVotesError(
                f"Training needs at least {MIN_TRAINING_PAIRS} A/B votes; {who} {len(self.rows)} "
                f"({self.left_out} tie / both-bad votes are not training pairs). Vote on more pairs first."
            )


def room_preferences(store: VoteStore, voter_id: str | None = None) -> RoomPreferences:
    """Everyone's votes (`voter_id=None`) or one voter's, as trl rows; ties and both-bad votes are left out."""
    latest = store.latest_votes(voter_id)
    rows = store.export_trl(voter_id)
    return RoomPreferences(rows=rows, votes=len(latest), left_out=len(latest) - len(rows), voter_id=voter_id)


def sampled_pairs(
    loaded: LoadedModel, prompts: Sequence[str], seed: int = 0, rounds: int = 4, max_new_tokens: int = 24
) -> list[Pair]:
    """Two different answers per prompt sampled from `loaded` (temperature 1, a private seeded generator, so every
    replica samples the same pairs and names them the same). The SFT model often samples the same answer twice:
    up to `rounds` draws per prompt, and a prompt whose answers never differed is left out."""
    tokenizer = loaded.tokenizer
    ids = {p: tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts}
    found: dict[str, Pair] = {}
    for round_ in range(rounds):
        todo = [p for p in prompts if p not in found]
        if not todo:
            break
        batch = [ids[p] for p in todo]
        answers = sample_answers(loaded.model, tokenizer, batch + batch, max_new_tokens, seed=seed + round_)
        texts = [tokenizer.decode(a, skip_special_tokens=True).strip() for a in answers]
        for prompt, a, b in zip(todo, texts[: len(todo)], texts[len(todo) :], strict=True):
            if a and b and a != b:
                found[prompt] = make_pair(prompt, a, b)
    return [found[p] for p in prompts if p in found]


@dataclass(frozen=True)
class RoomRun:
    """One run of a room-vs-shipped comparison, scored on the shipped held-out pairs."""

    name: str  # what it learned from
    pairs: int  # training pairs
    steps: int
    heldout_accuracy: float  # shipped test pairs whose chosen answer it ranks first
    right_answers: float | None  # DPO: share of sampled held-out answers that are right; None for reward models
    kl: float | None  # DPO: KL(π ‖ π_ref) on those answers, nats per answer
    seconds: float  # training and scoring
    result: Any  # the RewardRun or DPOOutcome


def room_reward_work(
    loaded: LoadedModel, room: RoomPreferences, cfg: RewardRunConfig
) -> Callable[[Job], list[RoomRun]]:
    """Two reward-model runs with the same settings: on the room's rows, then on as many shipped training
    pairs (a seeded random subset). Logged rows carry `source` (0: room, 1: shipped)."""
    room.check()
    cfg = replace(cfg, train_pairs=len(room.rows))
    cfg.check()

    def work(job: Job) -> list[RoomRun]:
        results = []
        for source, (name, pairs) in enumerate(((room.name, room.rows), (SHIPPED, None))):
            if job.should_stop:
                break
            started = time.perf_counter()
            run = train_reward_model(loaded, cfg, TaggedJob(job, source=source), pairs=pairs)
            result = RoomRun(
                name, len(room.rows), cfg.max_steps, run.heldout.accuracy, None, None,
                time.perf_counter() - started, run,
            )  # fmt: skip
            results.append(result)
        return results

    return work


def room_dpo_work(start: LoadedModel, room: RoomPreferences, settings: DPOSettings) -> Callable[[Job], list[RoomRun]]:
    """Two DPO runs with the same settings: on the room's rows, then on as many shipped training pairs; each
    policy is compared with the start model on the shipped held-out pairs (`llmlab.dpo_experiments.dpo_work`)."""
    room.check()
    shipped = random.Random(settings.seed).sample(preference_pairs(split="train"), len(room.rows))
    heldout = preference_pairs(split="test")

    def work(job: Job) -> list[RoomRun]:
        results = []
        for source, (name, pairs) in enumerate(((room.name, room.rows), (SHIPPED, shipped))):
            if job.should_stop:
                break
            started = time.perf_counter()
            outcome = dpo_experiments.dpo_work(start, pairs, heldout, settings, true_reward, asked=asked("test"))(
                TaggedJob(job, source=source)
            )
            report = outcome.heldout
            result = RoomRun(
                name, len(pairs), outcome.run.steps_done, report.accuracy_after, report.reward_after, report.kl,
                time.perf_counter() - started, outcome,
            )  # fmt: skip
            results.append(result)
        return results

    return work


# -- the votes as single rated answers: KTO ------------------------------------------------------------------


def votes_to_ratings(votes: Iterable[StoredVote]) -> list[dict]:
    """KTO's unpaired rows {"prompt", "completion", "label"} from pairwise votes: an A/B vote says the winner is
    good (👍) and the loser bad (👎); a both-bad vote says both are bad (two 👎: a signal DPO has to drop, since
    neither answer can be "chosen"); a tie says nothing about good or bad and gives no row."""
    rows = []
    for v in votes:
        if v.choice in ("a", "b"):
            good, bad = (v.answer_a, v.answer_b) if v.choice == "a" else (v.answer_b, v.answer_a)
            rows.append({"prompt": v.prompt, "completion": good, "label": True})
            rows.append({"prompt": v.prompt, "completion": bad, "label": False})
        elif v.choice == "both_bad":
            rows.append({"prompt": v.prompt, "completion": v.answer_a, "label": False})
            rows.append({"prompt": v.prompt, "completion": v.answer_b, "label": False})
    return rows


@dataclass(frozen=True)
class RoomRatings:
    """The votes a KTO run learns from (each voter's latest vote per pair), and the A/B ones DPO can use."""

    rows: list[dict]  # {"prompt", "completion", "label"}
    pairs: list[dict[str, str]]  # the A/B votes as DPO pairs {"prompt", "chosen", "rejected"}
    votes: int  # latest votes considered
    both_bad: int  # of those, both-bad votes: two 👎 rows each for KTO, nothing for DPO
    ties: int  # of those, ties: nothing for either
    voter_id: str | None

    @property
    def name(self) -> str:
        return "the room's votes" if self.voter_id is None else f"{self.voter_id}'s votes (single annotator)"

    @property
    def thumbs_up(self) -> int:
        return sum(bool(r["label"]) for r in self.rows)

    @property
    def enough(self) -> bool:
        return len(self.rows) >= MIN_RATINGS and 0 < self.thumbs_up

    def check(self) -> None:
        if not self.enough:
            raise NotEnoughVotesError(
                f"KTO needs at least {MIN_RATINGS} rated answers, one of them a 👍 (an A/B vote gives two, a "
                f"both-bad vote two 👎); there are {len(self.rows)}. Vote on more pairs first."
            )


def room_ratings(store: VoteStore, voter_id: str | None = None) -> RoomRatings:
    """Everyone's votes (`voter_id=None`) or one voter's, as KTO rows and as DPO pairs."""
    latest = store.latest_votes(voter_id)
    return RoomRatings(
        rows=votes_to_ratings(latest),
        pairs=store.export_trl(voter_id),
        votes=len(latest),
        both_bad=sum(v.choice == "both_bad" for v in latest),
        ties=sum(v.choice == "tie" for v in latest),
        voter_id=voter_id,
    )


def room_kto_work(
    start: LoadedModel, ratings: RoomRatings, kto_settings: kto.KTOSettings, dpo_settings: DPOSettings
) -> Callable[[Job], list[kto.MethodResult]]:
    """The start model, then DPO on the room's A/B votes (when there are at least MIN_TRAINING_PAIRS) and KTO on
    all its rated answers (both-bad votes included), from the same start with the same steps, β and learning
    rate; each scored by `llmlab.kto.evaluate`. Logged steps carry `run` (0: DPO, 1: KTO)."""
    ratings.check()
    dpo_name = f"DPO on {ratings.name} (A/B votes as pairs)"
    kto_name = f"KTO on {ratings.name} (👍/👎 answers)"

    def work(job: Job) -> list[kto.MethodResult]:
        seed = kto_settings.seed
        results = [kto.evaluate(f"{start.name} (start)", "start", start.model, start, seed=seed)]
        job.note(results[0])
        if len(ratings.pairs) >= MIN_TRAINING_PAIRS and not job.should_stop:
            run = train_dpo(start, ratings.pairs, dpo_settings, TaggedJob(job, run=0))
            n = len(ratings.pairs)
            results.append(kto.evaluate(dpo_name, "DPO", run.policy, start, n, n, run.steps_done, run.train_s, seed))
            job.note(results[-1])
        if not job.should_stop:
            run = kto.train_kto(start, ratings.rows, kto_settings, TaggedJob(job, run=1))
            results.append(
                kto.evaluate(
                    kto_name,
                    "KTO",
                    run.policy,
                    start,
                    len(ratings.rows),
                    ratings.thumbs_up,
                    run.steps_done,
                    run.train_s,
                    seed,
                )  # fmt: skip
            )
            job.note(results[-1])
        return results

    return work
