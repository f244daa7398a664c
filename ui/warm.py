"""The server's warm-up: every heavy import and the first model loads, once per process, in one background
thread, in a fixed order, before any page needs them.

Why one thread: transformers and trl import most of their names lazily, and their modules import each other.
When several script threads (a room opening the link at once on a fresh server) make the first import of them
together, Python's per-module import locks can hand one thread a module that another is still initialising,
and the page fails with e.g. `ImportError: cannot import name 'SFTConfig' from 'trl'`. Here one thread makes
every first import; a page waits for the stage it needs (`wait`), after which its own imports of those modules
are dictionary lookups. The same holds for first use that is not thread-safe: plotly's lazily loaded
templates, the shared models (loaded once into `ui.models.shared_model`'s cache).

The warm-up starts with the first script run on the server (`ui/__init__.py`: a page has no earlier hook),
in two stages, so the first demo does not wait for the trainers:
1. "the model": torch, transformers' model and tokenizer classes, plotly, the demos that need no trainer (the
   pre-training explorer, timeline and Chinchilla, the DPO loss); then the default model is loaded and one
   figure is built;
2. "the trainers": trl, peft, datasets and every other demo module (ui/demos/, walked).
Then, without holding anyone up, the RLHF and DPO pages' start model and the bundled reward models are loaded
(a page that needs one meanwhile waits for that load through the cache's own lock, never loads it twice).
A session that arrives meanwhile sees the card at once, and its demo as soon as the stage it needs is done.

Waiting for a stage is not enough on its own: a demo of stage 1 runs while stage 2 imports, and libraries import
lazily from inside their functions (plotly looks up pandas on every figure: it once met the pandas that stage 2
was half-way through importing). So while the warm-up runs, `demo_code()` (the pages' demo drawing) and each of
the warm-up's imports exclude each other, like readers and a writer: many demos at once, or one import. Once the
warm-up is done, `demo_code()` costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pkgutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

log = logging.getLogger("llmlab.warmup")

MODEL, TRAINERS = 0, 1  # the stages, in order
DEMOS_PACKAGE = "ui.demos"
WAIT_LIMIT_S = 600.0  # a stage that takes longer than this is reported as failed to the waiting page


def _load_default_model() -> None:
    import pandas as pd
    import plotly.io
    import pyarrow

    from llmlab.modeling import DEFAULT_MODEL, pick_device
    from llmlab.nexttoken import TokenProb
    from llmlab.plots import next_token_bars
    from ui.models import configure_torch, shared_model

    configure_torch()
    shared_model(DEFAULT_MODEL, pick_device())
    # What a first chart and a first table do, once, in this thread: plotly's template and its optional
    # imports; a DataFrame to Arrow as st.dataframe sends it.
    plotly.io.to_json(next_token_bars([TokenProb(0, "a", 1.0)], title="warm-up"))
    pyarrow.Table.from_pandas(pd.DataFrame([{"a": 1, "b": "x"}]))


def _load_start_models() -> None:
    from llmlab.modeling import pick_device
    from ui.demos.rlhf.reward_models import default_reward_model
    from ui.models import start_model

    start = start_model(pick_device())
    for biased in (False, True):
        default_reward_model(start.name, start.device, biased)


def _demo_modules() -> tuple[str, ...]:
    package = importlib.import_module(DEMOS_PACKAGE)
    return tuple(m.name for m in pkgutil.walk_packages(package.__path__, f"{DEMOS_PACKAGE}.") if not m.ispkg)


@dataclass
class Stage:
    name: str
    modules: tuple[str, ...] | Callable[[], tuple[str, ...]]
    then: Callable[[], None]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    seconds: float | None = None


STAGES = (
    Stage(
        "the model",
        (
            "torch",
            "numpy",
            "pandas",
            "pyarrow",
            "PIL.Image",
            "plotly.graph_objects",
            "transformers",
            "llmlab.modeling",
            "llmlab.nexttoken",
            "llmlab.plots",
            "llmlab.scaling",
            "ui.models",
            "ui.demos.pretraining.explorer",
            "ui.demos.pretraining.timeline",
            "ui.demos.pretraining.chinchilla",
            "ui.demos.dpo.start",
            "ui.demos.dpo.loss",
        ),
        _load_default_model,
    ),
    Stage("the trainers", lambda: ("trl", "peft", "datasets", *_demo_modules()), lambda: None),
)
PRELOAD = _load_start_models  # after the stages: nothing waits for it


class _Gate:
    """Readers (demo code, any number at once) or one writer (a first import), never both; a waiting writer goes
    before new readers. Re-entrant for a reader thread (a demo inside a demo's frame)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._depth = threading.local()
        self.open = False  # the warm-up is over: readers pass without a lock

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        depth = getattr(self._depth, "n", 0)
        if self.open or depth:
            self._depth.n = depth + 1
            try:
                yield
            finally:
                self._depth.n = depth
            return
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        self._depth.n = 1
        try:
            yield
        finally:
            self._depth.n = 0
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


_gate = _Gate()
_start_lock = threading.Lock()
_thread: threading.Thread | None = None


def demo_code() -> contextlib.AbstractContextManager[None]:
    """Wrap a page's demo drawing: while the warm-up imports, they take turns (module docstring)."""
    return _gate.reading()


def start() -> None:
    """Start the warm-up once per process (idempotent, cheap: every page calls it)."""
    global _thread
    with _start_lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="llmlab-warmup", daemon=True)
            _thread.start()


def _run() -> None:
    begun = time.perf_counter()
    for stage in STAGES:
        try:
            modules = stage.modules() if callable(stage.modules) else stage.modules
            for name in modules:
                with _gate.writing():
                    importlib.import_module(name)
            with _gate.writing():
                stage.then()
        except BaseException as err:  # noqa: BLE001  (reported to every page that waits for it)
            log.exception("warm-up: %s failed", stage.name)
            stage.error = err
        stage.seconds = time.perf_counter() - begun
        stage.done.set()
        log.info("warm-up: %s ready after %.1f s", stage.name, stage.seconds)
    _gate.open = True
    try:
        PRELOAD()
    except Exception:  # noqa: BLE001  (a page that needs the model loads it itself and shows its error)
        log.exception("warm-up: preloading the start and reward models failed")


class WarmUpError(RuntimeError):
    """A stage of the warm-up failed or did not finish in time; the page shows a short message."""


def stage_of(module: str) -> int:
    """The stage after which `module` may be imported: the one that lists it, else the last."""
    listed = STAGES[MODEL].modules
    return MODEL if module in listed else len(STAGES) - 1


def ready(stage: int) -> bool:
    return all(s.done.is_set() for s in STAGES[: stage + 1])


def wait(stage: int, timeout_s: float = WAIT_LIMIT_S) -> None:
    """Block until `stage` (and the stages before it) are done; raise WarmUpError if one failed."""
    start()
    deadline = time.monotonic() + timeout_s
    for s in STAGES[: stage + 1]:
        if not s.done.wait(max(0.0, deadline - time.monotonic())):
            raise WarmUpError(f"The server is still loading {s.name} after {timeout_s:.0f} s.")
        if s.error is not None:
            raise WarmUpError(f"The server could not load {s.name}: {s.error}") from s.error


def status() -> list[tuple[str, float | None]]:
    """(stage, seconds after the warm-up began when it was done; None while it is not) for each stage."""
    return [(s.name, s.seconds if s.done.is_set() else None) for s in STAGES]
