"""Background training runs: one thread per run, a stop event, and per-step metrics in a list.

A page cannot train inside its script (any click reruns the script and aborts the run), so a run is a
`Job`: its worker function runs in a thread, logs per-step numbers with `job.log(...)` and richer records
(a probe, a sample, a finished sub-run: each a typed object of the module that makes it) with
`job.note(record)`, checks `job.should_stop`, and never touches Streamlit. The page polls `job.snapshot()`
and `job.notes_of(Kind)` to draw. At most `MAX_RUNNING` jobs train at once per process (a workshop server has
few cores); later ones wait with status "queued".

    job = Job("pretrain", lambda job: train(..., on_step=lambda m: job.log(step=m.step, loss=m.loss),
                                             stop=job.stop_event))
    job.start(); ...; job.stop()
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from transformers import TrainerCallback

T = TypeVar("T")

MAX_RUNNING = 2
_slots = threading.BoundedSemaphore(MAX_RUNNING)
# Training threads run at this nice value (Linux; LLMLAB_JOB_NICE overrides, 0 turns it off): on a shared 2-core
# server a run takes both cores, and every attendee's slider rerun queued behind it. Niced, a run yields the CPU
# to page reruns and trains at full speed when the server is otherwise idle. The OpenMP workers torch starts
# for this thread inherit the value. Measured with bench/load_test.py, 30 sessions and one live run.
JOB_NICE = int(os.environ.get("LLMLAB_JOB_NICE", "10"))


def lower_thread_priority(nice: int = JOB_NICE) -> bool:
    """Lower the calling thread's CPU priority by `nice` (Linux threads have their own nice value); False if not
    done."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        return False
    return True


class Job:
    """A training run in a background thread. Status: new → queued → running → done | stopped | failed."""

    def __init__(self, name: str, work: Callable[[Job], Any]):
        self.name = name
        self._work = work
        self.metrics: list[dict[str, float]] = []  # one dict per logged step, appended by the worker
        self.notes: list[object] = []  # occasional richer records (probes, samples): typed objects
        self.stop_event = threading.Event()
        self.status = "new"
        self.error: str | None = None
        self.result: Any = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"llmlab-{name}", daemon=True)

    # -- called from the page -------------------------------------------------------------------
    def start(self) -> Job:
        self.status = "queued"
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the worker to stop after its current step (safe to call any number of times)."""
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self.status in ("queued", "running")

    @property
    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def snapshot(self) -> list[dict[str, float]]:
        with self._lock:
            return list(self.metrics)

    def notes_of(self, kind: type[T]) -> list[T]:
        """The records of one kind noted so far, in order."""
        with self._lock:
            return [note for note in self.notes if isinstance(note, kind)]

    @property
    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.perf_counter()) - self.started_at

    # -- called from the worker ------------------------------------------------------------------
    def log(self, **values: float) -> None:
        with self._lock:
            self.metrics.append(values)

    def note(self, record: object) -> None:
        with self._lock:
            self.notes.append(record)

    def _run(self) -> None:
        lower_thread_priority()  # before its first torch op, so torch's worker threads inherit it
        with _slots:
            if self.stop_event.is_set():
                self.status = "stopped"
                return
            self.status = "running"
            self.started_at = time.perf_counter()
            try:
                self.result = self._work(self)
                self.status = "stopped" if self.stop_event.is_set() else "done"
            except Exception as err:  # noqa: BLE001 - any failure becomes a message in the page
                self.error = f"{err}" if isinstance(err, (ValueError, RuntimeError)) else f"{type(err).__name__}: {err}"
                self.status = "failed"
            finally:
                self.finished_at = time.perf_counter()


class TaggedJob:
    """A view of a Job for one of several runs trained one after another into it (one per β, per labeller, ...):
    every logged step carries the tags (`run=1`, `beta=0.1`), notes and stop requests pass through. JobCallback
    and the workers take it wherever they take a Job."""

    def __init__(self, job: Job, **tags: float):
        self._job, self._tags = job, {name: float(value) for name, value in tags.items()}
        self.stop_event = job.stop_event

    @property
    def should_stop(self) -> bool:
        return self._job.should_stop

    def log(self, **values: float) -> None:
        self._job.log(**self._tags, **values)

    def note(self, record: object) -> None:
        self._job.note(record)


class JobCallback(TrainerCallback):
    """Connects a transformers/trl Trainer to a Job: logs every `on_log` dict, stops on request,
    and stops with a clear error when the loss stops being finite."""

    def __init__(self, job: Job):
        self.job = job

    def on_step_end(self, args, state, control, **kwargs):
        if self.job.should_stop:
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return control
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        values["step"] = state.global_step
        # trl 1.16 logs a loss of 0.0 (not NaN) once the weights are NaN: the grad norm still shows it.
        if not all(math.isfinite(values.get(k, 0.0)) for k in ("loss", "grad_norm")):
            raise DivergedError(
                f"The loss or its gradient became NaN at step {state.global_step}: the learning rate is too high. "
                "Lower it and start again."
            )
        if "train_runtime" not in values:  # the end-of-training summary is not a step
            self.job.log(**values)
        return control


class DivergedError(RuntimeError):
    """The loss became NaN or infinite: the learning rate is too high for this model."""


def overshooting(losses: list[float], ceiling: float, window: int = 5) -> bool:
    """Whether the mean of the last `window` losses is above `ceiling` (a loss no sane run should exceed, e.g.
    1.5 ln V for a language model: worse than guessing): the updates overshoot, the learning rate is too high.
    Unlike `DivergedError` the run goes on; the page warns."""
    recent = losses[-window:]
    return len(losses) >= window and sum(recent) / len(recent) > ceiling
