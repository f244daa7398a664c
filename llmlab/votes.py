"""Crowd preference votes: workshop attendees judge answer pairs, and every vote lands in a real database.

Storage goes through SQLAlchemy 2.x:

- SQLite (the embedded default): `<data folder>/votes.sqlite3`, where the data folder is `$LLMLAB_DATA_DIR`
  or `data/` in the repo. WAL mode (readers never block the writer), `synchronous=FULL` (a committed vote
  survives a crash of the process *and* of the machine), write transactions begin with `BEGIN IMMEDIATE` so
  concurrent writers queue on the busy timeout instead of failing.
- PostgreSQL when `$LLMLAB_DATABASE_URL` is set (several app replicas behind a load balancer); a bare
  `postgresql://` URL uses psycopg 3.

Nothing is ever silently dropped: `cast` returns only after the vote is committed, and raises
`VoteStoreError` with a message a person can act on otherwise (read-only or full data folder, wrong URL,
unreachable server, a pair that is no longer in the pool). Each vote carries a client-made `vote_uuid`, unique
in the table, so a double-click or a retry after a lost connection stores it once: casting the same uuid
again returns the stored vote. Votes copy the pair's prompt and answers, so they stay meaningful when the pair
pool changes.

    from llmlab.votes import Vote, VoteStore, pairs_from_preferences
    from llmlab.preferences import preference_pairs
    store = VoteStore()                                   # SQLite under data/, or $LLMLAB_DATABASE_URL
    pairs = pairs_from_preferences(preference_pairs(split="train")[:40])
    store.add_pairs(pairs)
    receipt = store.cast(Vote(vote_uuid=new_vote_uuid(), voter_id="v1", pair_id=pairs[0].pair_id, choice="a"))
    store.count(), store.agreement().rate, store.export_trl()   # [{"prompt", "chosen", "rejected"}, ...]

Training on the votes (the RLHF and DPO pages' "Vote as a room" tab) is `llmlab.vote_training`: this module
never imports torch, so voting alone stays light.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, make_url

CHOICES = ("a", "b", "tie", "both_bad")
CHOICE_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad"}
REPO_ROOT = Path(__file__).resolve().parents[1]
SQLITE_FILE = "votes.sqlite3"
BUSY_TIMEOUT_S = 30.0  # how long a SQLite writer waits for the lock before giving up (then retried)
CONNECT_TIMEOUT_S = 5  # PostgreSQL: a wrong host fails in seconds, not minutes
WRITE_ATTEMPTS = 3  # cast retries transient errors (lock timeout, dropped connection): safe, it is idempotent
MAX_ID_LENGTH = 64

DATA_DIR_ENV = "LLMLAB_DATA_DIR"
DATABASE_URL_ENV = "LLMLAB_DATABASE_URL"
PRESENTER_TOKEN_ENV = "LLMLAB_PRESENTER_TOKEN"


class VoteStoreError(Exception):
    """A vote could not be stored or read; the message says why and what to do."""


class UnknownPairError(VoteStoreError):
    """The vote is for a pair that is not (or no longer) in the pool."""


class PresenterTokenError(VoteStoreError):
    """A presenter-only action without the right presenter token."""


# --- schema -------------------------------------------------------------------------------------------------

metadata = MetaData()

votes_table = Table(
    "crowd_votes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("vote_uuid", String(MAX_ID_LENGTH), nullable=False, unique=True),  # the idempotency key
    Column("voter_id", String(MAX_ID_LENGTH), nullable=False, index=True),
    Column("pair_id", String(MAX_ID_LENGTH), nullable=False, index=True),
    Column("prompt", Text, nullable=False),
    Column("answer_a", Text, nullable=False),
    Column("answer_b", Text, nullable=False),
    Column("choice", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("choice IN ('a', 'b', 'tie', 'both_bad')", name="crowd_votes_choice"),
)

pairs_table = Table(
    "crowd_pairs",
    metadata,
    Column("pair_id", String(MAX_ID_LENGTH), primary_key=True),
    Column("prompt", Text, nullable=False),
    Column("answer_a", Text, nullable=False),
    Column("answer_b", Text, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
)


# --- records ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """A prompt and two answers to judge. `pair_id` is a hash of the text (see `make_pair`), so every app
    replica names the same pair the same way and votes from different people on it can be compared."""

    pair_id: str
    prompt: str
    answer_a: str
    answer_b: str


@dataclass(frozen=True)
class Vote:
    """One click: `vote_uuid` is made once per displayed pair (`new_vote_uuid`), so repeats are harmless."""

    vote_uuid: str
    voter_id: str
    pair_id: str
    choice: str  # one of CHOICES


@dataclass(frozen=True)
class StoredVote:
    id: int
    vote_uuid: str
    voter_id: str
    pair_id: str
    prompt: str
    answer_a: str
    answer_b: str
    choice: str
    created_at: datetime  # UTC


@dataclass(frozen=True)
class Receipt:
    """What `cast` returns once the vote is committed. `new` is False when this vote_uuid was already stored
    (a double-click or a retry): `vote` is then the stored one, whose choice is the first click's."""

    vote: StoredVote
    new: bool


@dataclass(frozen=True)
class Agreement:
    """Pairwise agreement between voters: over every pair judged by two or more voters, the fraction of
    voter-voter comparisons on the same pair that made the same choice (each voter's latest vote counts)."""

    shared_pairs: int  # pairs judged by at least two voters
    comparisons: int  # voter pairs compared, sum over shared pairs of k*(k-1)/2
    agreeing: int  # of those, how many chose the same

    @property
    def rate(self) -> float | None:
        return self.agreeing / self.comparisons if self.comparisons else None


@dataclass(frozen=True)
class Stats:
    votes: int
    voters: int
    agreement: Agreement


@dataclass(frozen=True)
class VoterCount:
    """One voter's latest vote per pair: how many, and how many are training pairs (A or B, not tie/both bad)."""

    voter_id: str
    votes: int
    usable: int


def make_pair(prompt: str, answer_a: str, answer_b: str) -> Pair:
    digest = hashlib.sha256(json.dumps([prompt, answer_a, answer_b]).encode()).hexdigest()
    return Pair(pair_id=digest[:16], prompt=prompt, answer_a=answer_a, answer_b=answer_b)


def pairs_from_preferences(rows: Iterable[dict], seed: int = 0) -> list[Pair]:
    """Pairs from trl-format preference rows, the chosen answer on side A or B at random (seeded), so the
    pool does not teach voters that A is always right. A row whose prompt and two answers already came
    (in either order) is skipped: the training set repeats some pairs, a ballot never should."""
    rng = random.Random(seed)
    pairs, seen = [], set()
    for row in rows:
        key = (row["prompt"], frozenset((row["chosen"], row["rejected"])))
        if key in seen:
            continue
        seen.add(key)
        a, b = (row["chosen"], row["rejected"]) if rng.random() < 0.5 else (row["rejected"], row["chosen"])
        pairs.append(make_pair(row["prompt"], a, b))
    return pairs


def new_vote_uuid() -> str:
    return uuid.uuid4().hex


def new_voter_id() -> str:
    """An anonymous random voter id (nothing about the person)."""
    return "voter-" + uuid.uuid4().hex[:12]


# --- configuration ------------------------------------------------------------------------------------------


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or REPO_ROOT / "data")


def database_url() -> str:
    """`$LLMLAB_DATABASE_URL` if set, else the SQLite file in the data folder."""
    return os.environ.get(DATABASE_URL_ENV, "").strip() or f"sqlite:///{data_dir() / SQLITE_FILE}"


def presenter_token() -> str | None:
    """The presenter token from `$LLMLAB_PRESENTER_TOKEN`; None when unset (presenter controls are off)."""
    return os.environ.get(PRESENTER_TOKEN_ENV, "").strip() or None


def is_presenter(token: str | None) -> bool:
    """Whether `token` is the presenter token (constant-time comparison); always False when none is set."""
    expected = presenter_token()
    if expected is None or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def choose_next_pair(
    pair_ids: Sequence[str], judged_by_me: set[str], judges: dict[str, int], rng: random.Random, target: int = 3
) -> str | None:
    """The pair a voter should judge next, or None when they judged them all.

    Agreement needs overlap, so pairs some others judged (fewer than `target` judges) come first, the most
    judged of them first; then fresh pairs; then pairs that already have `target` judges. Ties are broken at
    random (per voter), so a room of voters does not all start on the same pair."""
    open_ids = [p for p in pair_ids if p not in judged_by_me]
    if not open_ids:
        return None
    rng.shuffle(open_ids)

    def rank(pair_id: str) -> tuple[int, int]:
        n = judges.get(pair_id, 0)
        return (0, -n) if 0 < n < target else (1, 0) if n == 0 else (2, n)

    return min(open_ids, key=rank)


# --- errors -------------------------------------------------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_transient(error: sa_exc.DBAPIError) -> bool:
    """Errors a retry can fix: SQLite's lock timeout, a dropped PostgreSQL connection."""
    if error.connection_invalidated:
        return True
    text = str(error.orig).lower()
    if "database is locked" in text or "database table is locked" in text:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return sqlstate.startswith("08") or sqlstate in ("40001", "40P01", "57P01")  # connection, serialization


def _explain(error: BaseException, where: str) -> VoteStoreError:
    """A message a person can act on, for an error from the database."""
    text = _first_line(error)
    low = text.lower()
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None) or ""
    if "readonly database" in low or "read-only" in low or sqlstate == "25006":
        return VoteStoreError(
            f"The vote database at {where} is read-only, so votes cannot be saved ({text}). Make the data "
            f"folder writable, or point ${DATA_DIR_ENV} at a writable folder."
        )
    if "disk is full" in low or "no space left" in low or sqlstate == "53100":
        return VoteStoreError(
            f"The disk holding the vote database at {where} is full, so votes cannot be saved ({text}). "
            f"Free some space, or point ${DATA_DIR_ENV} at another disk; no vote was recorded."
        )
    if "unable to open database file" in low:
        return VoteStoreError(
            f"Cannot open the vote database at {where} ({text}). Check that the data folder exists and is "
            f"writable, or set ${DATA_DIR_ENV}."
        )
    if "database is locked" in low:
        return VoteStoreError(
            f"The vote database at {where} stayed locked for {BUSY_TIMEOUT_S:.0f} s ({text}); another process "
            "holds it. Try again; if it persists, restart the app."
        )
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError) and (
        sqlstate.startswith("08") or "connection" in low
    ):
        return VoteStoreError(
            f"Cannot reach the vote database at {where} ({text}). Check ${DATABASE_URL_ENV}: host, port, "
            "user, password and database name."
        )
    return VoteStoreError(f"The vote database at {where} failed: {text}")


# --- the store ----------------------------------------------------------------------------------------------


def _engine_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as e:
        raise VoteStoreError(
            f"{url!r} is not a database URL. Use postgresql://user:password@host:5432/dbname, or unset "
            f"${DATABASE_URL_ENV} for the embedded SQLite file."
        ) from e
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        if parsed.drivername in ("postgres", "postgresql"):
            parsed = parsed.set(drivername="postgresql+psycopg")  # SQLAlchemy's default driver would be psycopg2
        return parsed
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise VoteStoreError("An in-memory SQLite database loses every vote on restart: give a file path.")
        return parsed
    raise VoteStoreError(
        f"Unsupported database {backend!r} in {parsed.render_as_string(hide_password=True)}: "
        "use sqlite:///path/to/votes.sqlite3 or postgresql://user:password@host:5432/dbname."
    )


def _sqlite_engine(url: URL) -> Engine:
    path = Path(url.database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VoteStoreError(
            f"Cannot create the data folder {path.parent} ({e.strerror}). Set ${DATA_DIR_ENV} to a writable folder."
        ) from e
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise VoteStoreError(
            f"The data folder {path.parent} is read-only, so votes cannot be saved. Make it writable, or set "
            f"${DATA_DIR_ENV} to a writable folder."
        )
    engine = create_engine(
        url.set(database=str(path)),
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        pool_size=5,
        max_overflow=30,
        pool_timeout=60,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below), sqlite3 must not
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # A deferred transaction that reads, then writes can fail at once with SQLITE_BUSY when another writer
        # committed in between; BEGIN IMMEDIATE takes the write lock up front and waits on the busy timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("llmlab_write") else "BEGIN")

    return engine


class VoteStore:
    """Votes in SQLite or PostgreSQL; safe to share between threads (one per app process is enough)."""

    def __init__(self, url: str | None = None) -> None:
        parsed = _engine_url(url or database_url())
        self.url = parsed.render_as_string(hide_password=True)  # for messages: never the password
        self.dialect = parsed.get_backend_name()
        try:
            if self.dialect == "sqlite":
                self.engine = _sqlite_engine(parsed)
            else:
                self.engine = create_engine(
                    parsed,
                    connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
                    pool_pre_ping=True,  # a restarted server's dead connections are replaced, not used
                    pool_size=5,
                    max_overflow=30,
                )
        except (ImportError, sa_exc.NoSuchModuleError) as e:
            raise VoteStoreError(
                f"The database driver for {self.url} is not installed ({e}). For PostgreSQL: "
                "pip install 'psycopg[binary]'."
            ) from e
        self._writer = self.engine.execution_options(llmlab_write=True)
        # SQLite has one writer at a time; threads of this process queue on a lock instead of SQLite's busy
        # handler, which polls with sleeps of up to 100 ms (measured: p95 cast latency 1.6 s with 30 threads).
        # Other processes still wait on the busy timeout.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else nullcontext()
        self._create_schema()

    def __repr__(self) -> str:
        return f"VoteStore({self.url!r})"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.DBAPIError as e:
            raise _explain(e, self.url) from e

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed when the block exits."""
        with self._write_lock, self._writer.begin() as conn:
            yield conn

    def _create_schema(self) -> None:
        for attempt in range(2):  # two replicas creating the tables at once: the loser retries, sees them
            try:
                with self._write() as conn:
                    metadata.create_all(conn)
                return
            except (sa_exc.IntegrityError, sa_exc.ProgrammingError) as e:
                if attempt == 1:
                    raise _explain(e, self.url) from e
            except sa_exc.DBAPIError as e:
                raise _explain(e, self.url) from e

    def _insert(self, table: Table):
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(table)

    # --- pairs

    def add_pairs(self, pairs: Iterable[Pair]) -> int:
        """Put pairs in the pool (pairs already there are kept as they are); returns how many were new."""
        rows = [{**asdict(p), "added_at": datetime.now(UTC)} for p in pairs]
        if not rows:
            return 0
        stmt = (
            self._insert(pairs_table)
            .on_conflict_do_nothing(index_elements=["pair_id"])
            .returning(pairs_table.c.pair_id)  # rowcount is -1 for executemany on psycopg: count returned rows
        )
        with self._errors(), self._write() as conn:
            return len(conn.execute(stmt, rows).all())

    def remove_pairs(self, pair_ids: Iterable[str]) -> int:
        """Take pairs out of the pool (their votes stay); later votes for them raise UnknownPairError."""
        ids = list(pair_ids)
        with self._errors(), self._write() as conn:
            return conn.execute(delete(pairs_table).where(pairs_table.c.pair_id.in_(ids))).rowcount

    def pairs(self) -> list[Pair]:
        with self._errors(), self.engine.connect() as conn:
            rows = conn.execute(select(pairs_table).order_by(pairs_table.c.added_at, pairs_table.c.pair_id))
            return [Pair(r.pair_id, r.prompt, r.answer_a, r.answer_b) for r in rows]

    # --- votes

    def cast(self, vote: Vote) -> Receipt:
        """Store a vote and return its receipt only after the commit. Casting the same vote_uuid again
        (double-click, retry) stores nothing new and returns the stored vote with `new=False`."""
        _validate(vote)
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return self._cast_once(vote)
            except sa_exc.DBAPIError as e:
                if attempt + 1 < WRITE_ATTEMPTS and _is_transient(e):
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise _explain(e, self.url) from e
        raise AssertionError("unreachable")

    def _cast_once(self, vote: Vote) -> Receipt:
        by_uuid = select(votes_table).where(votes_table.c.vote_uuid == vote.vote_uuid)
        with self.engine.connect() as conn:  # a repeat (double-click, retry) is answered without the write lock
            existing = conn.execute(by_uuid).first()
        if existing is not None:
            return self._receipt(vote, existing, inserted=False)
        with self._write() as conn:
            existing = conn.execute(by_uuid).first()
            if existing is None:
                pair = conn.execute(select(pairs_table).where(pairs_table.c.pair_id == vote.pair_id)).first()
                if pair is None:
                    raise UnknownPairError(
                        f"Pair {vote.pair_id} is no longer in the pool (the pairs were replaced), so this vote "
                        "was not recorded. Please judge the next pair."
                    )
                values = {
                    **asdict(vote),
                    "prompt": pair.prompt,
                    "answer_a": pair.answer_a,
                    "answer_b": pair.answer_b,
                    "created_at": datetime.now(UTC),
                }
                # ON CONFLICT: on PostgreSQL two replicas may race on the same uuid; one row wins either way.
                stmt = (
                    self._insert(votes_table)
                    .values(values)
                    .on_conflict_do_nothing(index_elements=["vote_uuid"])
                    .returning(votes_table.c.id)
                )
                inserted = conn.execute(stmt).first() is not None
                existing = conn.execute(by_uuid).one()
            else:
                inserted = False
        # The transaction is committed here; only now is the vote acknowledged.
        return self._receipt(vote, existing, inserted)

    def _receipt(self, vote: Vote, row, inserted: bool) -> Receipt:
        stored = _stored(row)
        if (stored.voter_id, stored.pair_id) != (vote.voter_id, vote.pair_id):
            raise VoteStoreError(f"Vote id {vote.vote_uuid} was already used for another vote; nothing was recorded.")
        return Receipt(vote=stored, new=inserted)

    def count(self) -> int:
        with self._errors(), self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(votes_table)).scalar_one()

    def voter_count(self) -> int:
        with self._errors(), self.engine.connect() as conn:
            return conn.execute(select(func.count(votes_table.c.voter_id.distinct()))).scalar_one()

    def votes(self, voter_id: str | None = None) -> list[StoredVote]:
        """Every stored vote (one voter's when `voter_id` is given), oldest first."""
        stmt = select(votes_table).order_by(votes_table.c.id)
        if voter_id is not None:
            stmt = stmt.where(votes_table.c.voter_id == voter_id)
        with self._errors(), self.engine.connect() as conn:
            return [_stored(r) for r in conn.execute(stmt)]

    def next_pair_id(self, voter_id: str, pair_ids: Sequence[str], seed: int | str = 0) -> str | None:
        """The pair `voter_id` should judge next among those of `pair_ids` still in the pool (see
        `choose_next_pair`); None when none is left for them."""
        ids = list(pair_ids)
        judged = select(votes_table.c.pair_id, votes_table.c.voter_id).where(votes_table.c.pair_id.in_(ids)).distinct()
        counts: Counter[str] = Counter()
        mine: set[str] = set()
        with self._errors(), self.engine.connect() as conn:
            live = set(conn.execute(select(pairs_table.c.pair_id).where(pairs_table.c.pair_id.in_(ids))).scalars())
            for pair_id, voter in conn.execute(judged):
                counts[pair_id] += 1
                if voter == voter_id:
                    mine.add(pair_id)
        rng = random.Random(f"{seed}-{voter_id}")
        return choose_next_pair([p for p in ids if p in live], mine, counts, rng)

    def latest_votes(self, voter_id: str | None = None) -> list[StoredVote]:
        """Each voter's latest vote per pair (a voter who judged a pair twice changed their mind)."""
        latest = {(v.voter_id, v.pair_id): v for v in self.votes(voter_id)}
        return sorted(latest.values(), key=lambda v: v.id)

    def voter_counts(self) -> list[VoterCount]:
        """Every voter with their latest-vote counts, the most training pairs first (the single-annotator pick)."""
        votes: Counter[str] = Counter()
        usable: Counter[str] = Counter()
        for v in self.latest_votes():
            votes[v.voter_id] += 1
            usable[v.voter_id] += v.choice in ("a", "b")
        counts = [VoterCount(voter, n, usable[voter]) for voter, n in votes.items()]
        return sorted(counts, key=lambda c: (-c.usable, -c.votes, c.voter_id))

    def agreement(self) -> Agreement:
        with self._errors(), self.engine.connect() as conn:
            return _agreement(conn)

    def stats(self) -> Stats:
        """Votes, voters and agreement in one read (the live counter's query)."""
        with self._errors(), self.engine.connect() as conn:
            votes = conn.execute(select(func.count()).select_from(votes_table)).scalar_one()
            voters = conn.execute(select(func.count(votes_table.c.voter_id.distinct()))).scalar_one()
            return Stats(votes=votes, voters=voters, agreement=_agreement(conn))

    # --- export

    def export_trl(self, voter_id: str | None = None) -> list[dict[str, str]]:
        """trl's preference format {"prompt", "chosen", "rejected"}, one row per voter and pair (their latest
        vote); ties and both-bad votes say nothing about which answer is better and are left out."""
        rows = []
        for v in self.latest_votes(voter_id):
            if v.choice in ("a", "b"):
                chosen, rejected = (v.answer_a, v.answer_b) if v.choice == "a" else (v.answer_b, v.answer_a)
                rows.append({"prompt": v.prompt, "chosen": chosen, "rejected": rejected})
        return rows

    def export_jsonl(self, voter_id: str | None = None, trl: bool = True) -> str:
        """JSON lines: trl rows (`trl=True`), or every stored vote with all its columns."""
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self._export_rows(voter_id, trl))

    def export_csv(self, voter_id: str | None = None, trl: bool = True) -> str:
        """CSV: trl rows (`trl=True`: prompt, chosen, rejected), or every stored vote with all its columns."""
        fields = ["prompt", "chosen", "rejected"] if trl else list(votes_table.c.keys())
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self._export_rows(voter_id, trl))
        return out.getvalue()

    def _export_rows(self, voter_id: str | None, trl: bool) -> list[dict]:
        if trl:
            return self.export_trl(voter_id)
        return [{**asdict(v), "created_at": v.created_at.isoformat()} for v in self.votes(voter_id)]

    # --- presenter

    def clear(self, token: str | None) -> int:
        """Delete every vote (the pair pool stays); needs the presenter token. Returns how many were deleted."""
        if presenter_token() is None:
            raise PresenterTokenError(
                f"Clearing votes is disabled: the server has no presenter token (set ${PRESENTER_TOKEN_ENV})."
            )
        if not is_presenter(token):
            raise PresenterTokenError("Wrong presenter token: no vote was deleted.")
        with self._errors(), self._write() as conn:
            return conn.execute(delete(votes_table)).rowcount


def _agreement(conn: Connection) -> Agreement:
    """Counted in the database: for each pair, how many voters' latest votes made each choice."""
    latest = (
        select(func.max(votes_table.c.id).label("id"))
        .group_by(votes_table.c.voter_id, votes_table.c.pair_id)
        .subquery()
    )
    per_choice = (
        select(votes_table.c.pair_id, func.count())
        .join(latest, votes_table.c.id == latest.c.id)
        .group_by(votes_table.c.pair_id, votes_table.c.choice)
    )
    by_pair: dict[str, list[int]] = defaultdict(list)  # pair -> voters per choice
    for pair_id, n in conn.execute(per_choice):
        by_pair[pair_id].append(n)
    shared = [counts for counts in by_pair.values() if sum(counts) >= 2]
    return Agreement(
        shared_pairs=len(shared),
        comparisons=sum(sum(c) * (sum(c) - 1) // 2 for c in shared),
        agreeing=sum(n * (n - 1) // 2 for c in shared for n in c),
    )


def _validate(vote: Vote) -> None:
    if vote.choice not in CHOICES:
        raise VoteStoreError(f"Unknown choice {vote.choice!r}: a vote is one of {', '.join(CHOICES)}.")
    for name in ("vote_uuid", "voter_id", "pair_id"):
        value = getattr(vote, name)
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
            raise VoteStoreError(f"A vote needs a {name} of 1 to {MAX_ID_LENGTH} characters, not {value!r}.")


def _stored(row) -> StoredVote:
    created = row.created_at
    if created.tzinfo is None:  # SQLite keeps no zone; we always write UTC
        created = created.replace(tzinfo=UTC)
    return StoredVote(
        id=row.id,
        vote_uuid=row.vote_uuid,
        voter_id=row.voter_id,
        pair_id=row.pair_id,
        prompt=row.prompt,
        answer_a=row.answer_a,
        answer_b=row.answer_b,
        choice=row.choice,
        created_at=created,
    )
