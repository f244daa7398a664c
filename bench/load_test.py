"""Load test: N simulated attendees talking Streamlit's own websocket protocol to one server on 127.0.0.1.

Each simulated session does what a browser tab does (Streamlit 1.67's frontend, read from its sources):
it connects to ``ws://127.0.0.1:PORT/_stcore/stream`` with the ``streamlit`` subprotocol, asks for a run
with a ``rerun_script`` BackMsg (ClientState: page_name for a deep link, then the page_script_hash the
server sent in ``new_session``; the query string the page last published; every widget value it set), learns
widget ids from the deltas (``$$ID-<hash>-<user key>``) and sends a widget change as a rerun of the widget's
fragment. It honours ``auto_rerun`` (``st.fragment(run_every=...)``) like the browser's setInterval, answers
``ref_hash`` messages from its own message cache, and advertises that cache like the browser does.

The scenario, per N: a fresh server, one warm-up visit of both pages (model and caches loaded, as in a
workshop where the presenter opened the app first), then N sessions join over a short ramp:
- session 0 is the presenter: it presses Start of the pre-training "watch it learn" panel (a live training
  job that it keeps watching: the panel redraws every 0.5 s) and moves that tab's learning-rate slider meanwhile;
  a run that finishes is started again, and Stop is pressed at the end;
- the others open the pre-training page, move the temperature slider a few times, switch to the DPO page's
  "Live DPO" tab (by its link) and move its beta slider (another page's slider while the DPO page has none).
Interaction latency is the time from sending the rerun to the ``script_finished`` of that run (what a user
waits for until the chart is redrawn). Errors: tracebacks shown in the app, runs that never finish, closed
connections, missing widgets. Bounded: a fixed number of interactions per session and a deadline per N.

    python -m bench.load_test --sessions 1 10 30
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from bench.report import Row, print_table
from llmlab.threadenv import THREAD_ENV
from ui.frame import FRIENDLY_ERROR  # an unexpected error, caught and shown as a short message

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = ("127.0.0.1", "localhost")

PRETRAINING = "Pretraining"  # url path of pages/1_Pretraining.py
DPO = "DPO"  # url path of pages/4_DPO.py
TEMPERATURE = "pt_temperature"  # a control of the explorer computed in the browser (ui/instant.py)
FALLBACK_SLIDER = "pt_top_p"  # used for the "DPO" half while the DPO page has no slider
TRAIN_START, TRAIN_STOP = "pt_live_start", "pt_live_stop"  # ui/runs.py: run_panel("pt_live", ...)
# The pages draw only their open tab: the presenter opens "Watch it learn" by its link, as a shared URL does,
# and moves that tab's learning-rate slider (for the next run) while the live panel redraws.
LIVE_TAB_QUERY = urllib.parse.urlencode({"tab_pretraining": "Watch it learn"})
PRESENTER_SLIDER = "pt_live_lr"
DPO_TAB_QUERY = urllib.parse.urlencode({"tab_dpo": "Live DPO"})  # the tab with the β slider
PRESENTER_LABEL = f"{PRESENTER_SLIDER} (training session)"  # its moves queue behind the live panel's redraws
TRAINING_STEP = re.compile(r"Step ([\d,]+): loss")  # the live panel's caption (pages/1_Pretraining.py)

CHARTS = ("plotly_chart", "graphviz_chart")  # what counts as a demo's chart having arrived (and ui/instant.py's)
INSTANT = "llmlab_instant"  # ui/instant.py's component: a demo drawn in the browser, with its controls

# Targets of issue 7 (for 30 sessions; the same ones are shown for smaller N).
MAX_P95_S = 1.0
MAX_RSS_BYTES = 1.5 * 1024**3


class LoadTestError(RuntimeError):
    """An interaction that did not complete (no script_finished, connection lost, widget missing)."""


# -- the server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    started: float  # time.perf_counter() just before the process was started
    log: Path

    def rss_bytes(self) -> int:
        return process_rss(self.proc.pid)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def process_rss(pid: int) -> int:
    """Resident memory of a process and its children, in bytes (0 if it is gone)."""
    try:
        proc = psutil.Process(pid)
        return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
    except psutil.Error:
        return 0


def server_pid(url: str) -> int | None:
    """The pid of a `streamlit run` child process of this one serving `url` (for servers started elsewhere)."""
    port = str(urllib.parse.urlparse(url).port)
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if "streamlit" in " ".join(cmd) and port in cmd:
                return child.pid
    return None


def server_env() -> dict[str, str]:
    env = {
        **os.environ,
        **THREAD_ENV,
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("LLMLAB_EAGER_TABS", None)  # the lazy tabs users get (the test suite sets it for AppTest)
    return env


@contextlib.contextmanager
def streamlit_server(
    wait_healthy: bool = True, timeout_s: float = 180, theme: str = "light", script: str = "app.py", cwd: Path = ROOT
) -> Iterator[Server]:
    """A fresh `streamlit run app.py` (or `script`, in `cwd`) on a free 127.0.0.1 port, stopped afterwards (its
    log in a temp file)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", script,
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--theme.base", theme,
    ]  # fmt: skip
    with tempfile.NamedTemporaryFile("wb", prefix="llmlab-bench-server-", suffix=".log", delete=False) as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=server_env(), stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, started, Path(log.name))
    try:
        if wait_healthy:
            _wait_healthy(server, timeout_s)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        server.log.unlink(missing_ok=True)


def _wait_healthy(server: Server, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if server.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{server.log_tail()}") from None
            time.sleep(0.2)


# -- one simulated browser session ------------------------------------------------------------------------


@dataclass
class _Waiter:
    """An interaction waiting for the script_finished of its run."""

    fragment_id: str | None  # None: a full run
    future: asyncio.Future
    what: str
    early_at: float | None = None  # when its run finished "early for rerun"

    def fail(self, why: str) -> None:
        if not self.future.done():
            self.future.set_exception(LoadTestError(why))


@dataclass
class Widget:
    id: str
    key: str  # the user key the page gave it ("" if none)
    kind: str  # the Element oneof name: slider, button, ...
    fragment_id: str  # the fragment that drew it ("" for the main script)
    proto: Any  # its Slider / Button / ... message


def user_key(widget_id: str) -> str:
    """`$$ID-<hash>-<user key>` -> the user key (widgets without one end in "-None")."""
    parts = widget_id.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "$$ID" and parts[2] != "None" else ""


def check_loopback(url: str) -> None:
    host = urllib.parse.urlparse(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"the load test only talks to a server on 127.0.0.1, not {host!r}")


class Session:
    """One simulated browser tab. Not thread-safe: use it from one asyncio loop."""

    def __init__(self, base_url: str, name: str = "session", run_timeout_s: float = 60.0) -> None:
        check_loopback(base_url)
        self.uri = base_url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
        self.name = name
        self.run_timeout_s = run_timeout_s
        self.errors: list[str] = []
        self.widgets: dict[str, Widget] = {}  # by user key, as last drawn
        # The settings drawn as browser controls of a demo computed in the browser (ui/instant.py), by setting key:
        # (the demo's component, the control as the page sent it). Moving one while dragging costs the server
        # nothing; the end of a drag sends all the demo's values as the component's state, and a rerun follows.
        self.controls: dict[str, tuple[Widget, dict]] = {}
        self.page_hash = ""
        self.query_string = ""
        self.training_step = 0  # the highest "Step N" a live training panel showed this session
        self.first_step_at = 0.0  # when (perf_counter) the live panel first showed a step
        self.auto_rerun_started = 0  # how many run_every fragments the server asked this session to poll
        self.headings_at: dict[str, float] = {}  # heading text -> when it first arrived (perf_counter)
        self.first_chart_at: float | None = None  # when the first chart (plotly or graphviz) arrived
        self.error_alerts: list[str] = []  # every st.error text the app sent (e.g. a failed run's message)
        # The runs seen (received at, what), for error reports: enough for a minute of 0.5 s redraws.
        self.trace: collections.deque[tuple[float, str]] = collections.deque(maxlen=400)
        self._ws: Any = None
        self._reader: asyncio.Task | None = None
        self._closing = False
        self._cache: dict[str, ForwardMsg] = {}  # cacheable messages by hash (the browser's message cache)
        self._values: dict[str, WidgetState] = {}  # widget values this tab set, by widget id
        self._slider_values: dict[str, float] = {}  # their numbers (option index for a select_slider)
        self._seen_this_run: set[str] = set()  # widget ids drawn in the current run (full or fragment)
        self._waiters: list[_Waiter] = []
        self._auto: dict[str, tuple[float, asyncio.Task]] = {}

    # connection

    async def connect(self, timeout_s: float = 30.0, retry_until: float | None = None) -> None:
        """Open the websocket; with `retry_until` (a perf_counter time), retry while the server is not up yet."""
        while True:
            try:
                self._ws = await asyncio.wait_for(
                    websockets.connect(self.uri, subprotocols=["streamlit"], max_size=None, ping_interval=None),
                    timeout_s,
                )
                break
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                if retry_until is None or time.perf_counter() > retry_until:
                    raise
                await asyncio.sleep(0.05)
        self._reader = asyncio.create_task(self._read(), name=f"{self.name}-reader")

    async def close(self) -> None:
        self._closing = True
        for fragment_id in list(self._auto):
            self._stop_auto(fragment_id)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    @property
    def auto_rerunning(self) -> bool:
        """Whether a `run_every` fragment (a live panel) is being polled now."""
        return bool(self._auto)

    # what a user does

    async def goto(self, page_name: str = "", query: str = "") -> float:
        """Open a page by its url path ("" = app.py) and query string, as a deep link or a sidebar link does;
        seconds to finish."""
        self.query_string = query
        return await self._rerun(page_name=page_name, page_hash="", what=f"open page {page_name or 'app.py'!r}")

    async def set_slider(self, key: str, value: float) -> float:
        """Move a slider (a select_slider or a choice control takes an option index) and wait for the rerun;
        seconds. For a browser control (ui/instant.py) this is the end of a drag: the one message the server
        gets for it."""
        if key in self.controls:
            return await self._set_control(key, value)
        widget = self.widget(key, "slider")
        state = WidgetState(id=widget.id)
        if widget.proto.options:  # select_slider: the browser sends the formatted option
            state.string_array_value.data.append(widget.proto.options[int(value)])
        else:
            state.double_array_value.data.append(float(value))
        self._values[widget.id] = state
        self._slider_values[widget.id] = float(value)
        return await self._rerun(fragment_id=widget.fragment_id, what=f"move {key} to {value:g}")

    async def click(self, key: str) -> float:
        """Press a button (a trigger value, sent once) and wait for the rerun; seconds."""
        widget = self.widget(key, "button")
        if widget.proto.disabled:
            raise LoadTestError(f"{self.name}: button {key!r} is disabled")
        trigger = WidgetState(id=widget.id, trigger_value=True)
        return await self._rerun(fragment_id=widget.fragment_id, trigger=trigger, what=f"click {key}")

    def widget(self, key: str, kind: str) -> Widget:
        widget = self.widgets.get(key)
        if widget is None or widget.kind != kind:
            raise LoadTestError(f"{self.name}: no {kind} with key {key!r} on this page")
        return widget

    async def _set_control(self, key: str, value: float) -> float:
        component, control = self.controls[key]
        values = {c["name"]: c["value"] for c in json.loads(component.proto.json)["controls"]}
        values[control["name"]] = control["choices"][int(value)] if control["kind"] == "choice" else value
        state = WidgetState(id=component.id, json_value=json.dumps({"value": json.dumps(values)}))
        self._values[component.id] = state
        self._slider_values[component.id + key] = float(value)
        return await self._rerun(fragment_id=component.fragment_id, what=f"drag {key} to {value:g}")

    def _control_number(self, key: str) -> tuple[float, list[float]]:
        """A browser control's current value (an option index for a choice) and the values it can take."""
        component, control = self.controls[key]
        if control["kind"] == "choice":
            current = float(control["choices"].index(control["value"]))
            choices = [float(i) for i in range(len(control["choices"]))]
        else:
            current = float(control["value"])
            n = int(round((control["hi"] - control["lo"]) / control["step"]))
            choices = [round(control["lo"] + i * control["step"], 10) for i in range(n + 1)]
        return self._slider_values.get(component.id + key, current), choices

    def slider_value(self, key: str) -> float:
        """The slider's current value as this tab knows it (an option index for a select_slider)."""
        if key in self.controls:
            return self._control_number(key)[0]
        widget = self.widget(key, "slider")
        if widget.id in self._slider_values:
            return self._slider_values[widget.id]
        return (list(widget.proto.value) or list(widget.proto.default) or [widget.proto.min])[0]

    def new_slider_value(self, key: str, rng: random.Random) -> float:
        """A random allowed value of a slider, different from its current one."""
        if key in self.controls:
            current, choices = self._control_number(key)
            others = [c for c in choices if not math.isclose(c, current)]
            return rng.choice(others or choices)
        proto = self.widget(key, "slider").proto
        current = self.slider_value(key)
        if proto.options:  # select_slider: the value is an option index
            choices = [float(i) for i in range(len(proto.options))]
        else:
            n = int(round((proto.max - proto.min) / proto.step)) if proto.step > 0 else 1
            choices = [round(proto.min + i * proto.step, 10) for i in range(n + 1)]
        others = [c for c in choices if not math.isclose(c, current)]
        return rng.choice(others or choices)

    # the protocol

    async def _rerun(
        self,
        page_name: str = "",
        page_hash: str | None = None,
        fragment_id: str = "",
        trigger: WidgetState | None = None,
        auto: bool = False,
        what: str = "rerun",
    ) -> float:
        if self._ws is None:
            raise LoadTestError(f"{self.name}: not connected")
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string
        state.page_script_hash = self.page_hash if page_hash is None else page_hash
        state.page_name = page_name
        state.fragment_id = fragment_id
        state.is_auto_rerun = auto
        state.cached_message_hashes.extend(self._cache)
        state.widget_states.widgets.extend(self._values.values())
        if trigger is not None:
            state.widget_states.widgets.append(trigger)
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-US"
        future: asyncio.Future | None = None
        if not auto:
            future = asyncio.get_running_loop().create_future()
            self._waiters.append(_Waiter(fragment_id or None, future, what))
        start = time.perf_counter()
        await self._ws.send(msg.SerializeToString())
        if future is None:
            return 0.0
        try:
            finished_at = await asyncio.wait_for(future, self.run_timeout_s)
        except TimeoutError:
            raise LoadTestError(
                f"{self.name}: {what}: no script_finished within {self.run_timeout_s:.0f} s "
                f"(sent at {start % 1000:.2f} for fragment {fragment_id[:6] or 'full'}; the runs that began and "
                f"ended in the next 5 s: {self._runs_seen(start, start + 5)})"
            ) from None
        return finished_at - start

    def _runs_seen(self, start: float, end: float) -> str:
        return " | ".join(f"{at % 1000:.2f} {what}" for at, what in self.trace if start - 1 <= at <= end)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                received = time.perf_counter()
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self._handle(msg, received)
        except websockets.ConnectionClosed as err:
            if not self._closing:
                self._fail(f"websocket closed: {err}")
        except Exception as err:  # noqa: BLE001  (a client bug must show up as an error, not hang)
            self._fail(f"reader failed: {err!r}")
        else:
            if not self._closing:
                self._fail("websocket closed by the server")

    def _fail(self, why: str) -> None:
        self.errors.append(f"{self.name}: {why}")
        for waiter in self._waiters:
            waiter.fail(f"{self.name}: {why}")
        self._waiters.clear()

    def _handle(self, msg: ForwardMsg, received: float) -> None:
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":
            cached = self._cache.get(msg.ref_hash)
            if cached is None:
                self.errors.append(f"{self.name}: server referred to a message this tab never got")
                return
            full = ForwardMsg()
            full.CopyFrom(cached)
            full.metadata.CopyFrom(msg.metadata)
            msg, kind = full, cached.WhichOneof("type")
        elif msg.metadata.cacheable and msg.hash:
            self._cache[msg.hash] = msg

        if kind in ("new_session", "script_finished"):
            status = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished) if kind == "script_finished" else ""
            frags = ",".join(f[:6] for f in msg.metadata.run.fragment_ids) or "full"
            self.trace.append((received, f"{kind} {status} [{frags}]"))
        if kind == "new_session":
            self.page_hash = msg.new_session.page_script_hash
            fragments = set(msg.metadata.run.fragment_ids)
            if not fragments:  # a full run: the browser drops its run_every timers
                for fragment_id in list(self._auto):
                    self._stop_auto(fragment_id)
            self._seen_this_run = set()
            self._on_run_started(fragments)
        elif kind == "delta":
            self._on_delta(msg.delta, received)
        elif kind == "navigation":
            # The page this run resolved to. A deep link's first new_session names a placeholder hash; the
            # browser takes the page's own hash from here, and a rerun with the placeholder would run app.py.
            self.page_hash = msg.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            self._start_auto(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fragment_id in msg.stop_auto_rerun.fragment_ids:
                self._stop_auto(fragment_id)
        elif kind == "page_not_found":
            self.errors.append(f"{self.name}: page not found: {msg.page_not_found.page_name!r}")
        elif kind == "session_event" and msg.session_event.WhichOneof("type") == "script_compilation_exception":
            self.errors.append(f"{self.name}: script failed to compile")
        elif kind == "script_finished":
            self._on_finished(msg, received)

    def _on_delta(self, delta: Any, received: float) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind is None:
            return
        proto = getattr(element, kind)
        if kind == "heading":
            self.headings_at.setdefault(proto.body, received)
        elif kind in CHARTS or (kind == "bidi_component" and proto.component_name.endswith(INSTANT)):
            self.first_chart_at = self.first_chart_at or received
        elif kind == "exception":
            self.errors.append(f"{self.name}: the app showed a traceback: {proto.type}: {proto.message[:200]}")
        elif kind == "alert" and proto.format == proto.ERROR:
            self.error_alerts.append(proto.body)
            if proto.body.startswith(FRIENDLY_ERROR):
                self.errors.append(f"{self.name}: the app showed an error: {proto.body[:200]}")
        elif kind == "markdown":
            found = TRAINING_STEP.search(proto.body)
            if found:
                self.training_step = max(self.training_step, int(found.group(1).replace(",", "")))
                self.first_step_at = self.first_step_at or received
        widget_id = getattr(proto, "id", "")
        if isinstance(widget_id, str) and widget_id.startswith("$$ID-"):
            key = user_key(widget_id)
            self._seen_this_run.add(widget_id)
            if key:
                self.widgets[key] = Widget(widget_id, key, kind, delta.fragment_id, proto)
            if key and kind == "bidi_component" and proto.component_name.endswith(INSTANT):
                for control in json.loads(proto.json).get("controls", []):
                    self.controls[control["key"]] = (self.widgets[key], control)

    def _on_run_started(self, fragments: set[str]) -> None:
        """Settle the interactions whose fragment run was marked "early for rerun" (see `_on_finished`)."""
        waiting = []
        for waiter in self._waiters:
            if waiter.early_at is not None and fragments and waiter.fragment_id not in fragments:
                # The new run redraws other fragments: the server kept this run's deltas and sent them.
                if not waiter.future.done():
                    waiter.future.set_result(waiter.early_at)
                continue
            waiter.early_at = None  # this run (or a full one) redraws it: wait for that one
            waiting.append(waiter)
        self._waiters = waiting

    def _on_finished(self, msg: ForwardMsg, received: float) -> None:
        status = msg.script_finished
        fragments = set(msg.metadata.run.fragment_ids)
        if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            # Streamlit 1.67 relabels a finished run "early for rerun" when the next run starts before its
            # messages were flushed (ForwardMsgQueue.clear); only the deltas of fragments that the next run
            # redraws are dropped. A full run is always run again. So a fragment interaction is done here
            # unless the next run includes its fragment or is a full run (decided when that run starts).
            for waiter in self._waiters:
                if waiter.fragment_id is not None and waiter.fragment_id in fragments:
                    waiter.early_at = received
            return
        if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
            self._fail("the script failed to compile")
            return
        full_run = status == ForwardMsg.FINISHED_SUCCESSFULLY
        if full_run:  # the browser forgets the widgets that are gone, and their values (removeInactive)
            self._values = {k: v for k, v in self._values.items() if k in self._seen_this_run}
            self.widgets = {k: w for k, w in self.widgets.items() if w.id in self._seen_this_run}
        elif status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:  # and those a fragment no longer draws
            self.widgets = {
                k: w for k, w in self.widgets.items() if w.fragment_id not in fragments or w.id in self._seen_this_run
            }
        drawn = {w.id for w in self.widgets.values()}
        self.controls = {k: (w, c) for k, (w, c) in self.controls.items() if w.id in drawn}
        waiting = []
        for waiter in self._waiters:
            if full_run or (waiter.fragment_id is not None and waiter.fragment_id in fragments):
                if not waiter.future.done():
                    waiter.future.set_result(received)
            else:
                waiting.append(waiter)
        self._waiters = waiting

    def _start_auto(self, fragment_id: str, interval: float) -> None:
        if not fragment_id or (fragment_id in self._auto and self._auto[fragment_id][0] == interval):
            return
        self._stop_auto(fragment_id)
        self.auto_rerun_started += 1
        task = asyncio.get_running_loop().create_task(self._poll(fragment_id, interval), name=f"{self.name}-auto")
        self._auto[fragment_id] = (interval, task)

    def _stop_auto(self, fragment_id: str) -> None:
        entry = self._auto.pop(fragment_id, None)
        if entry is not None:
            entry[1].cancel()

    async def _poll(self, fragment_id: str, interval: float) -> None:
        """The browser's setInterval: ask for a rerun of the fragment every `interval` s, finished or not."""
        with contextlib.suppress(websockets.ConnectionClosed, LoadTestError):
            while True:
                await asyncio.sleep(interval)
                await self._rerun(fragment_id=fragment_id, auto=True)


# -- the scenario --------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    sessions: int
    # Slider interactions: (sent at, in s after the sessions began to join; slider label; latency in s).
    moves: list[tuple[float, str, float]] = field(default_factory=list)
    started_at: float = 0.0  # perf_counter() when the sessions began to join
    opens: list[tuple[float, str, float]] = field(default_factory=list)  # pages opened or switched to: the same
    errors: list[str] = field(default_factory=list)
    rss_start: int = 0  # server RSS after the warm-up, bytes (0: unknown)
    rss_peak: int = 0
    training_started: int = 0  # live training runs started by the presenter session
    training_polls: int = 0  # run_every panels the server asked for (a running job's live view)
    training_step: int = 0  # the highest step the live panel showed
    first_step_at: float = 0.0  # when the live panel first showed a step, s after the sessions began to join
    second_slider: str = ""  # the slider used for the DPO half
    duration_s: float = 0.0

    @property
    def latencies_s(self) -> list[float]:
        return [latency for _, _, latency in self.moves]

    @property
    def page_opens_s(self) -> list[float]:
        return [latency for _, _, latency in self.opens]

    @property
    def by_slider(self) -> dict[str, list[float]]:
        by_slider: dict[str, list[float]] = {}
        for _, label, latency in self.moves:
            by_slider.setdefault(label, []).append(latency)
        return by_slider

    @staticmethod
    def slowest(events: list[tuple[float, str, float]], n: int = 5) -> str:
        """The n slowest of `moves` or `opens`, with when they were sent (a stall shows up as slow events sent
        at about the same time)."""
        slow = sorted(events, key=lambda m: -m[2])[:n]
        return ", ".join(f"{label} {latency:.2f} s (sent at {sent:.1f} s)" for sent, label, latency in slow)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def pick_second_slider(session: Session) -> str | None:
    """The DPO page's beta slider (key with "beta"), else any other slider of the DPO page."""
    sliders = [k for k, w in session.widgets.items() if w.kind == "slider" and k.startswith("dpo_")]
    beta = [k for k in sliders if "beta" in k]
    return (beta or sliders or [None])[0]


async def _think(rng: random.Random, think_s: tuple[float, float]) -> None:
    await asyncio.sleep(rng.uniform(*think_s))


async def _open(session: Session, page: str, query: str, result: LoadResult) -> None:
    sent = time.perf_counter() - result.started_at
    latency = await session.goto(page, query)
    result.opens.append((sent, f"{page}?{query}" if query else page, latency))


async def _move(session: Session, key: str, rng: random.Random, result: LoadResult, label: str = "") -> None:
    """One slider move: its latency (in `by_slider` under `label` or the key), or an error (the session goes
    on unless its connection is gone)."""
    try:
        sent = time.perf_counter() - result.started_at
        latency = await session.set_slider(key, session.new_slider_value(key, rng))
        result.moves.append((sent, label or key, latency))
    except LoadTestError as err:
        if not session.connected:
            raise
        result.errors.append(str(err))


async def _attendee(
    index: int, url: str, result: LoadResult, per_page: int, think_s: tuple[float, float], run_timeout_s: float
) -> None:
    rng = random.Random(index)
    session = Session(url, f"session {index}", run_timeout_s)
    try:
        await session.connect()
        await _open(session, PRETRAINING, "", result)
        for _ in range(per_page):
            await _think(rng, think_s)
            await _move(session, TEMPERATURE, rng, result)
        await _open(session, DPO, DPO_TAB_QUERY, result)
        key = pick_second_slider(session)
        if key is None:  # no slider on the DPO page yet: back to pre-training and its top-p slider
            await _open(session, PRETRAINING, "", result)
            key = FALLBACK_SLIDER
        result.second_slider = f"{DPO if key != FALLBACK_SLIDER else PRETRAINING}:{key}"
        for _ in range(per_page):
            await _think(rng, think_s)
            await _move(session, key, rng, result)
    except Exception as err:  # noqa: BLE001  (every failure is counted, the other sessions go on)
        result.errors.append(str(err) if isinstance(err, LoadTestError) else f"{session.name}: {err!r}")
    finally:
        await session.close()
        result.errors.extend(e for e in session.errors if e not in result.errors)


async def _presenter(
    url: str,
    result: LoadResult,
    per_page: int,
    think_s: tuple[float, float],
    run_timeout_s: float,
    others_done: asyncio.Event,
    deadline: float,
) -> None:
    """Session 0: a live training job runs (and is watched) the whole time; the live tab's lr slider moves."""
    rng = random.Random(0)
    session = Session(url, "session 0 (training)", run_timeout_s)
    try:
        await session.connect()
        await _open(session, PRETRAINING, LIVE_TAB_QUERY, result)
        moves = 0
        while moves < 2 * per_page or (not others_done.is_set() and time.perf_counter() < deadline):
            if not session.auto_rerunning and not session.widget(TRAIN_START, "button").proto.disabled:
                await session.click(TRAIN_START)  # (again, if the last run finished)
                result.training_started += 1
            await _think(rng, think_s)
            if moves < 2 * per_page:
                await _move(session, PRESENTER_SLIDER, rng, result, PRESENTER_LABEL)
                moves += 1
        if session.auto_rerunning and not session.widget(TRAIN_STOP, "button").proto.disabled:
            await session.click(TRAIN_STOP)
    except Exception as err:  # noqa: BLE001  (every failure is counted, the other sessions go on)
        result.errors.append(str(err) if isinstance(err, LoadTestError) else f"{session.name}: {err!r}")
    finally:
        result.training_polls = session.auto_rerun_started
        result.training_step = session.training_step
        if session.first_step_at:
            result.first_step_at = session.first_step_at - result.started_at
        await session.close()
        result.errors.extend(e for e in session.errors if e not in result.errors)


async def _sample_rss(pid: int, result: LoadResult, every_s: float = 0.25) -> None:
    while True:
        result.rss_peak = max(result.rss_peak, process_rss(pid))
        await asyncio.sleep(every_s)


async def warm_up(url: str, pages: tuple[str, ...] = (PRETRAINING, DPO), run_timeout_s: float = 300) -> list[str]:
    """One visit of each page (what the presenter does before attendees join): models and caches loaded.
    Returns the errors seen (a traceback on a page is reported, not raised)."""
    session = Session(url, "warm-up", run_timeout_s)
    try:
        await session.connect()
        for page in pages:
            await session.goto(page)
    except (LoadTestError, OSError, websockets.WebSocketException, TimeoutError) as err:
        session.errors.append(f"warm-up: {err}")
    finally:
        await session.close()
    return session.errors


async def load_test(
    url: str,
    sessions: int,
    pid: int | None = None,
    per_page: int = 4,
    think_s: tuple[float, float] = (1.0, 3.0),
    ramp_s: float = 5.0,
    deadline_s: float = 240.0,
    run_timeout_s: float = 60.0,
) -> LoadResult:
    """Run the scenario once against a (warm) server; never longer than `deadline_s`."""
    if not 1 <= sessions <= 200:
        raise ValueError("sessions must be between 1 and 200")
    result = LoadResult(sessions)
    sampler = None
    if pid is not None:
        result.rss_start = result.rss_peak = process_rss(pid)
        sampler = asyncio.create_task(_sample_rss(pid, result))
    start = result.started_at = time.perf_counter()
    others_done = asyncio.Event()

    async def attendee_later(index: int) -> None:
        await asyncio.sleep(ramp_s * index / max(sessions - 1, 1))
        await _attendee(index, url, result, per_page, think_s, run_timeout_s)

    async def attendees() -> None:
        try:
            await asyncio.gather(*(attendee_later(i) for i in range(1, sessions)))
        finally:
            others_done.set()

    tasks = [
        asyncio.create_task(_presenter(url, result, per_page, think_s, run_timeout_s, others_done, start + deadline_s)),
        asyncio.create_task(attendees()),
    ]
    done, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=30)
        result.errors.append(f"deadline of {deadline_s:.0f} s reached before every session finished")
    for task in done:
        if task.exception() is not None:
            result.errors.append(f"load-test client failed: {task.exception()!r}")
    result.duration_s = time.perf_counter() - start
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        result.rss_peak = max(result.rss_peak, process_rss(pid))
    return result


def measure(sessions: int, **options: Any) -> LoadResult:
    """A fresh server, a warm-up visit, then the scenario with `sessions` sessions (a server that does not
    start is reported as an error of this N)."""
    try:
        with streamlit_server() as server:
            warm_up_errors = asyncio.run(warm_up(server.url))
            result = asyncio.run(load_test(server.url, sessions, pid=server.proc.pid, **options))
            result.errors[:0] = warm_up_errors
            if result.errors:
                tail = server.log_tail(1500).strip()
                if "Traceback" in tail:
                    result.errors.append(f"server log ends with: {tail[-600:]}")
            return result
    except RuntimeError as err:
        return LoadResult(sessions, errors=[f"server: {str(err)[:300]}"])


# -- the report ----------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1024**2:,.0f} MB"


def rows_for(results: list[LoadResult]) -> list[Row]:
    """Errors, slider latency (p50/p95/max), page opens, server RSS and the training job, per N."""
    rows = []
    base = next((r for r in results if r.sessions == 1 and r.latencies_s), None)
    for r in results:
        n = f"load test, {r.sessions} session{'s' if r.sessions > 1 else ''}"
        errors = f"{len(r.errors)}" + (f" (first: {r.errors[0][:160]})" if r.errors else "")
        rows.append(Row(f"{n}: errors", "0", errors, ok=not r.errors))
        if r.latencies_s:
            p95 = percentile(r.latencies_s, 95)
            ratio = f"{p95 / percentile(base.latencies_s, 95):.2f}x 1 session" if base and base is not r else ""
            per_slider = ", ".join(f"{key} {_ms(percentile(v, 95))}" for key, v in sorted(r.by_slider.items()))
            measured = (
                f"p50 {_ms(statistics.median(r.latencies_s))}, p95 {_ms(p95)}, max {_ms(max(r.latencies_s))} "
                f"({len(r.latencies_s)} moves; p95 by slider: {per_slider})"
            )
            rows.append(
                Row(f"{n}: slider -> rerun finished", f"p95 <= {_ms(MAX_P95_S)}", measured, ratio, p95 <= MAX_P95_S)
            )
        else:
            rows.append(
                Row(f"{n}: slider -> rerun finished", f"p95 <= {_ms(MAX_P95_S)}", "no interaction finished", ok=False)
            )
        if r.page_opens_s:
            measured = (
                f"p50 {_ms(statistics.median(r.page_opens_s))}, p95 {_ms(percentile(r.page_opens_s, 95))}, "
                f"max {_ms(max(r.page_opens_s))} ({len(r.page_opens_s)} opens)"
            )
            rows.append(Row(f"{n}: page open / switch (full run)", "", measured))
        if r.rss_peak:
            base_rss = (
                f"{r.rss_peak / base.rss_peak:.2f}x 1 session" if base and base.rss_peak and base is not r else ""
            )
            measured = f"peak {_mb(r.rss_peak)} (after warm-up {_mb(r.rss_start)})"
            rows.append(
                Row(f"{n}: server RSS", f"<= {_mb(MAX_RSS_BYTES)}", measured, base_rss, r.rss_peak <= MAX_RSS_BYTES)
            )
        training = (
            f"{r.training_started} run(s) started, live view polled, step {r.training_step:,} reached"
            if r.training_polls
            else f"{r.training_started} run(s) started, no live view"
        )
        rows.append(Row(f"{n}: live training job meanwhile", "runs", training, ok=r.training_polls > 0))
    if results and results[-1].second_slider.startswith(PRETRAINING):
        rows.append(
            Row(
                "load test: DPO half used",
                "",
                f"{results[-1].second_slider} (no dpo_ slider was found on the DPO page)",
            )
        )
    return rows


def run(sessions: tuple[int, ...] = (1, 10, 30), **options: Any) -> list[Row]:
    return rows_for([measure(n, **options) for n in sessions])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 30], help="N values, one fresh server each")
    parser.add_argument("--per-page", type=int, default=4, help="slider moves per page per session")
    parser.add_argument("--think", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"), help="seconds")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which the sessions join")
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds per N, then everything stops")
    args = parser.parse_args()
    results = []
    for n in args.sessions:
        result = measure(
            n, per_page=args.per_page, think_s=tuple(args.think), ramp_s=args.ramp, deadline_s=args.deadline
        )
        for error in result.errors[:10]:
            print(f"  N={n}: {error}", file=sys.stderr)
        if result.moves:
            print(f"  N={n}: slowest slider moves: {result.slowest(result.moves)}; slowest page opens: "
                  f"{result.slowest(result.opens, 3)}; the training run showed its first step at "
                  f"{result.first_step_at:.1f} s", file=sys.stderr)  # fmt: skip
        results.append(result)
    print_table(rows_for(results), "Load test (websocket sessions on 127.0.0.1)")


if __name__ == "__main__":
    main()
