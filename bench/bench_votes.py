"""Vote storage under load: 30 voters × 50 votes at once, and a writer killed mid-run then restarted.

Everything runs on this machine against the storage layer (`llmlab.votes.VoteStore`): SQLite in a temporary
folder always, and PostgreSQL too when `LLMLAB_TEST_POSTGRES_URL` is set (`eval "$(scripts/ci_postgres.sh)"`
starts a throwaway server on 127.0.0.1). The tables are dropped before each scenario, so point it at a
throwaway database only.

- threads: one store shared by 30 voter threads (one app process, 30 sessions); 10% of votes are
  double-clicked (cast twice in a row) and a 31st thread re-sends random votes of the others while they vote
  (a load balancer retrying), so the same vote uuid races itself.
- processes: 3 processes × 10 voter threads, each with its own store (3 app replicas on one database).
- kill and restart: a writer subprocess prints "ACK <uuid>" after each committed vote; it is SIGKILLed after
  `kill_after` acknowledgements, then a new writer re-sends the whole plan (as browsers retry unanswered
  clicks). Every acknowledged vote must be there after the kill; afterwards exactly the planned number.

    /work/venv/bin/python -m bench.bench_votes
    /work/venv/bin/python -m bench.bench_votes writer --url URL --voters 0:10 --per-voter 50   # one writer
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.report import Row, print_table
from llmlab.threadenv import THREAD_ENV
from llmlab.votes import CHOICES, Pair, Vote, VoteStore, make_pair, metadata

ROOT = Path(__file__).resolve().parents[1]
VOTERS = 30
VOTES_PER_VOTER = 50
POOL_SIZE = 60  # pairs in the pool; each voter judges 50 distinct ones, so pairs get ~25 judges each
DOUBLE_CLICK = 0.1
PLAN_NAMESPACE = uuid.UUID("6f1c2f4e-7a43-4f0e-9d55-0b8f5c1f2a10")


def bench_pairs(n: int = POOL_SIZE) -> list[Pair]:
    """A pool with the text a real pool has: several lines, accents, emoji, quotes, commas."""
    return [
        make_pair(
            f"<|user|>Question {i}: what's the capital of «Pays {i}»?<|assistant|>",
            f'The capital is Ville-{i}, naïve café 🙂.\nSecond line, with "quotes".',
            f"It is Town {i * 7 % n}; <b>not</b> markup.",
        )
        for i in range(n)
    ]


def vote_plan(voters: range, per_voter: int, pairs: Sequence[Pair], seed: int = 0) -> list[list[Vote]]:
    """Each voter's votes, deterministic (uuid5 of seed/voter/index), so a restarted writer re-sends the same
    uuids. A voter judges `per_voter` distinct pairs in a random order and picks a random choice."""
    plan = []
    for v in voters:
        rng = random.Random(f"{seed}-{v}")
        chosen = rng.sample(list(pairs), per_voter)
        plan.append(
            [
                Vote(
                    vote_uuid=uuid.uuid5(PLAN_NAMESPACE, f"{seed}-{v}-{i}").hex,
                    voter_id=f"voter-{v:03d}",
                    pair_id=pair.pair_id,
                    choice=rng.choice(CHOICES),
                )
                for i, pair in enumerate(chosen)
            ]
        )
    return plan


def fresh_store(url: str, pairs: Sequence[Pair]) -> VoteStore:
    """A store on empty tables holding `pairs`."""
    store = VoteStore(url)
    with store.engine.begin() as conn:
        metadata.drop_all(conn)
    store.close()
    store = VoteStore(url)
    store.add_pairs(pairs)
    return store


@dataclass(frozen=True)
class Check:
    planned: int
    stored: int
    distinct: int
    missing: int  # planned uuids not in the database
    acked_missing: int = 0  # acknowledged before a kill, yet not in the database

    @property
    def ok(self) -> bool:
        return self.stored == self.distinct == self.planned and self.missing == 0 and self.acked_missing == 0


def check(store: VoteStore, plan: list[list[Vote]], acked: set[str] = frozenset()) -> Check:
    stored = store.votes()
    uuids = {v.vote_uuid for v in stored}
    planned = {v.vote_uuid for votes in plan for v in votes}
    return Check(len(planned), len(stored), len(uuids), len(planned - uuids), len(acked - uuids))


def cast_all(store: VoteStore, votes: list[Vote], seed: int, latencies: list[float]) -> None:
    rng = random.Random(seed)
    for vote in votes:
        start = time.perf_counter()
        store.cast(vote)
        latencies.append(time.perf_counter() - start)
        if rng.random() < DOUBLE_CLICK:
            store.cast(vote)


def run_threads(store: VoteStore, plan: list[list[Vote]], retry_storm: bool = True) -> tuple[float, list[float]]:
    """Every voter in its own thread, all at once; returns wall seconds and per-vote latencies."""
    latencies: list[float] = []
    done = threading.Event()
    all_votes = [v for votes in plan for v in votes]

    def retry_storm_thread() -> int:  # a load balancer re-sending votes that may be in flight right now
        rng, resent = random.Random(1), 0
        while not done.wait(0.005):  # about as often as the 30 voters together send new votes
            store.cast(rng.choice(all_votes))
            resent += 1
        return resent

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(plan) + 1) as pool:
        storm = pool.submit(retry_storm_thread) if retry_storm else None
        futures = [pool.submit(cast_all, store, votes, i, latencies) for i, votes in enumerate(plan)]
        for f in futures:
            f.result()  # re-raises a voter's error
        wall = time.perf_counter() - start
        done.set()
        if storm is not None:
            storm.result()
    return wall, latencies


# --- the writer subprocess (kill-and-restart, multi-process) ------------------------------------------------


def writer_command(url: str, voters: range, per_voter: int, seed: int = 0, threads: int = 4) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.bench_votes",
        "writer",
        "--url",
        url,
        "--voters",
        f"{voters.start}:{voters.stop}",
        "--per-voter",
        str(per_voter),
        "--seed",
        str(seed),
        "--threads",
        str(threads),
    ]


def writer_main(url: str, voters: range, per_voter: int, seed: int, threads: int) -> None:
    """Cast the plan of `voters` with `threads` threads; print "ACK <uuid>" after each committed vote."""
    store = VoteStore(url)
    plan = vote_plan(voters, per_voter, bench_pairs(), seed)
    lock = threading.Lock()

    def cast(votes: list[Vote]) -> None:
        for vote in votes:
            store.cast(vote)  # returns only after the commit
            with lock:
                sys.stdout.write(f"ACK {vote.vote_uuid}\n")
                sys.stdout.flush()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for f in [pool.submit(cast, votes) for votes in plan]:
            f.result()
    print("DONE", flush=True)


def _env() -> dict[str, str]:
    return {**os.environ, **THREAD_ENV, "PYTHONPATH": str(ROOT)}


def kill_and_restart(url: str, voters: int = 6, per_voter: int = 50, kill_after: int = 100) -> dict:
    """Kill a writer after `kill_after` acknowledged votes, check them, restart it to finish the plan."""
    pairs = bench_pairs()
    store = fresh_store(url, pairs)
    plan = vote_plan(range(voters), per_voter, pairs)
    start = time.perf_counter()
    proc = subprocess.Popen(
        writer_command(url, range(voters), per_voter), stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT
    )
    acked: set[str] = set()
    for line in proc.stdout:
        if line.startswith("ACK "):
            acked.add(line.split()[1])
        if len(acked) >= kill_after:
            proc.send_signal(signal.SIGKILL)  # mid-run: other writer threads are inside transactions
            break
    proc.wait()
    proc.stdout.close()
    at_kill = store.count()
    after_kill = check(store, plan, acked)
    restart = subprocess.run(
        writer_command(url, range(voters), per_voter), capture_output=True, text=True, env=_env(), cwd=ROOT
    )
    if restart.returncode != 0:
        raise RuntimeError(f"restarted writer failed:\n{restart.stderr[-2000:]}")
    final = check(store, plan, acked)
    store.close()
    return {
        "acked_before_kill": len(acked),
        "stored_at_kill": at_kill,
        "acked_missing_after_kill": after_kill.acked_missing,
        "final": final,
        "killed_by": -proc.returncode,
        "wall_s": time.perf_counter() - start,
    }


def run_processes(url: str, processes: int = 3, voters: int = VOTERS, per_voter: int = VOTES_PER_VOTER) -> dict:
    """`processes` writer processes (app replicas), each voting for its share of the voters with threads."""
    pairs = bench_pairs()
    store = fresh_store(url, pairs)
    plan = vote_plan(range(voters), per_voter, pairs)
    share = voters // processes
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            writer_command(url, range(p * share, (p + 1) * share), per_voter, threads=share),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=ROOT,
        )
        for p in range(processes)
    ]
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"a writer process failed:\n{errors[0][-2000:]}")
    result = {"final": check(store, plan), "wall_s": wall}
    store.close()
    return result


# --- the table ----------------------------------------------------------------------------------------------


def _rows_for(name: str, url: str) -> list[Row]:
    rows = []
    pairs = bench_pairs()
    plan = vote_plan(range(VOTERS), VOTES_PER_VOTER, pairs)
    store = fresh_store(url, pairs)
    wall, latencies = run_threads(store, plan)
    result = check(store, plan)
    store.close()
    total = VOTERS * VOTES_PER_VOTER
    rows.append(
        Row(
            f"{name}: {VOTERS} voter threads × {VOTES_PER_VOTER} votes (+double-clicks, retry storm)",
            f"exactly {total}, 0 dup, 0 lost",
            f"{result.stored} stored, {result.stored - result.distinct} dup, {result.missing} lost",
            f"{total / wall:.0f} votes/s",
            result.ok,
        )
    )
    q = statistics.quantiles(latencies, n=20)
    rows.append(
        Row(
            f"{name}: cast latency under that load, p50 / p95",
            "",
            f"{statistics.median(latencies) * 1000:.1f} / {q[18] * 1000:.1f} ms",
        )
    )
    procs = run_processes(url)
    rows.append(
        Row(
            f"{name}: 3 processes × 10 voters × {VOTES_PER_VOTER} votes",
            f"exactly {total}, 0 dup, 0 lost",
            f"{procs['final'].stored} stored, {procs['final'].stored - procs['final'].distinct} dup, "
            f"{procs['final'].missing} lost",
            f"{total / procs['wall_s']:.0f} votes/s incl. start-up",
            procs["final"].ok,
        )
    )
    crash = kill_and_restart(url, voters=VOTERS, per_voter=VOTES_PER_VOTER, kill_after=500)
    rows.append(
        Row(
            f"{name}: writer SIGKILLed after {crash['acked_before_kill']} acks, then restarted",
            "every ack kept; then exactly " + str(total),
            f"{crash['acked_before_kill'] - crash['acked_missing_after_kill']}/{crash['acked_before_kill']} acks "
            f"kept ({crash['stored_at_kill']} stored at kill); final {crash['final'].stored}, "
            f"{crash['final'].stored - crash['final'].distinct} dup, {crash['final'].missing} lost",
            f"{crash['wall_s']:.1f} s",
            crash["acked_missing_after_kill"] == 0 and crash["final"].ok,
        )
    )
    return rows


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        rows = _rows_for("SQLite (WAL)", f"sqlite:///{tmp}/votes.sqlite3")
    pg_url = os.environ.get("LLMLAB_TEST_POSTGRES_URL")
    if pg_url:
        rows += _rows_for("PostgreSQL", pg_url)
    else:
        rows.append(Row("PostgreSQL", "", "skipped: LLMLAB_TEST_POSTGRES_URL not set"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    writer = sub.add_parser("writer", help="cast a vote plan, printing ACK <uuid> after each commit")
    writer.add_argument("--url", required=True)
    writer.add_argument("--voters", default="0:30", help="voter numbers start:stop")
    writer.add_argument("--per-voter", type=int, default=VOTES_PER_VOTER)
    writer.add_argument("--seed", type=int, default=0)
    writer.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    if args.command == "writer":
        start, stop = (int(x) for x in args.voters.split(":"))
        writer_main(args.url, range(start, stop), args.per_voter, args.seed, args.threads)
    else:
        print_table(run(), "Crowd votes: storage under load")


if __name__ == "__main__":
    main()
