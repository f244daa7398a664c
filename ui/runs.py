"""The one run panel: Start / Stop / Reset buttons for a background `Job`, and a live view while it runs.

The job lives in a session-scoped `st.cache_resource` registry, so each browser session has its own runs
and closing the tab stops them (`on_release`). While a job runs, a fragment redraws every 0.5 s; when it
ends, one full rerun puts the buttons back. AppTest never fires `run_every`: tests poll with `at.run()`.

That redrawing fragment is never nested in another fragment. A demo tab is a fragment so that its sliders
rerun only the tab (`fragment_unless_running`), but while one of the session's runs is live the tab is drawn
as part of the page run instead. Streamlit's nested `run_every` fragments are where its fragment bugs
cluster (streamlit#10719, #15084, #16708); the 30-session load test lost a slider move made in such a tab
about once in 40 runs (not proven to be Streamlit's doing: the load-test client had two bugs then too).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import streamlit as st

if TYPE_CHECKING:  # light at import: the explorer (warm-up stage 1) keeps figures without the trainers' imports
    from llmlab.jobs import Job

REDRAW_S = 0.5
T = TypeVar("T")


def _stop_all(jobs: dict[str, Job]) -> None:
    for job in jobs.values():
        job.stop()


@st.cache_resource(scope="session", on_release=_stop_all)
def session_jobs() -> dict[str, Job]:
    """This session's jobs by panel key; released (and its jobs stopped) when the session ends."""
    return {}


def current_job(key: str) -> Job | None:
    return session_jobs().get(key)


def any_running() -> bool:
    """Whether one of this session's runs is live (on any page)."""
    return any(job.running for job in session_jobs().values())


_tab = threading.local()  # .in_fragment: a `fragment_unless_running` tab is running as a fragment (per script thread)


def fragment_unless_running(draw: Callable[..., None]) -> Callable[..., None]:
    """Decorator for a demo tab with run panels: the tab is an `st.fragment` while none of the session's runs is
    live (a widget rerun redraws only the tab), and part of the page run while one is, so that the run's live
    view is a top-level `run_every` fragment (see the module docstring). Start, pressed in the fragment, then
    asks for one full rerun (`run_panel`); a run that ends asks for one too (`_live_view`)."""

    @functools.wraps(draw)
    def in_fragment(*args, **kwargs) -> None:
        _tab.in_fragment = True
        try:
            draw(*args, **kwargs)
        finally:
            _tab.in_fragment = False

    as_fragment = st.fragment(in_fragment)

    @functools.wraps(draw)
    def tab(*args, **kwargs) -> None:
        if any_running():
            draw(*args, **kwargs)
        else:
            as_fragment(*args, **kwargs)

    return tab


def _start(key: str, make_job: Callable[[], Job]) -> None:
    jobs = session_jobs()
    old = jobs.get(key)
    if old is not None and old.running:
        return  # a double click, or a second tab of this session: one run per panel
    try:
        jobs[key] = make_job().start()
    except Exception as err:  # noqa: BLE001  (shown in the panel; the page keeps working)
        st.session_state[f"{key}_start_error"] = f"The run could not start: {err}"


def _stop(key: str) -> None:
    job = session_jobs().get(key)
    if job is not None:  # Stop before Start, or twice: nothing to do
        job.stop()
        job.join(timeout=5)  # let it finish its current step so the view below is final


def _reset(key: str) -> None:
    job = session_jobs().pop(key, None)
    if job is not None:
        job.stop()


def run_panel(
    key: str,
    make_job: Callable[[], Job],
    draw: Callable[[Job], None],
    start_label: str = "Start",
    idle_message: str = "Press Start to begin a run.",
) -> Job | None:
    """Buttons plus the live view for one kind of run. `make_job` builds (not starts) a new Job;
    `draw(job)` draws its metrics so far. Returns the session's job for this panel, if any.

    The buttons act in `on_click` callbacks, which run before the script: the buttons are then drawn with the
    state after the click (Stop enabled as soon as a run starts), and a page inside a fragment needs no rerun."""
    b1, b2, b3 = st.columns(3)
    job = session_jobs().get(key)
    running = job is not None and job.running
    b1.button(start_label, key=f"{key}_start", type="primary", disabled=running, on_click=_start,
              args=(key, make_job))  # fmt: skip
    b2.button("Stop", key=f"{key}_stop", disabled=not running, on_click=_stop, args=(key,))
    reset = b3.button("Reset", key=f"{key}_reset", disabled=job is None, on_click=_reset, args=(key,))
    error = st.session_state.pop(f"{key}_start_error", None)
    if error:
        st.error(error, icon="⚠️")
    if reset and getattr(_tab, "in_fragment", False):
        st.rerun(scope="app")  # Reset pressed in the tab's fragment: what is drawn outside it forgets the run too

    if job is None:
        st.caption(idle_message)
        return None
    if running and getattr(_tab, "in_fragment", False):
        st.rerun(scope="app")  # Start was pressed in the tab's fragment: redraw the tab outside one
    if running:
        _live_view(key, draw)
    else:
        _status_line(job)
        draw(job)
        metrics_download(job, key)
    return job


def metrics_download(job: Job, key: str) -> None:
    """Every finished run's per-step metrics as a CSV download."""
    import pandas as pd

    rows = job.snapshot()
    if rows:
        st.download_button(
            "Download the metrics (CSV)",
            pd.DataFrame(rows).to_csv(index=False),
            file_name=f"{job.name}-metrics.csv",
            mime="text/csv",
            key=f"{key}_csv",
            icon="⬇️",
        )


def _live_view(key: str, draw: Callable[[Job], None]) -> None:
    @st.fragment(run_every=REDRAW_S)
    def live() -> None:
        job = session_jobs().get(key)
        if job is None:
            return
        _status_line(job)
        draw(job)
        if not job.running:
            st.rerun()  # one full rerun: buttons go back to idle, the final view is drawn

    live()


def _status_line(job: Job) -> None:
    if job.status == "queued":
        st.info("Waiting for a free training slot: other runs are using the server's cores.", icon="⏳")
    elif job.status == "running":
        st.caption(f"Running… {job.elapsed_s:.1f} s")
    elif job.status == "done":
        st.success(f"Finished in {job.elapsed_s:.1f} s.", icon="✅")
    elif job.status == "stopped":
        st.info(f"Stopped after {job.elapsed_s:.1f} s; the results so far are kept below.", icon="⏹️")
    elif job.status == "failed":
        st.error(job.error or "The run failed.", icon="⚠️")


# -- what a demo keeps between reruns ---------------------------------------------------------------------


def run_id(job: Job) -> str:
    """A run's key among kept results (object ids can be reused after a Reset)."""
    return f"{job.name}@{job.started_at}"


class Kept(Generic[T]):
    """Results of this session's finished runs that a demo keeps showing after the run's panel moved on (every
    β of every sweep, every live run's summary): in `st.session_state[key]`, one entry per run. Start `key` with
    the page's prefix, so "Reset this page" forgets them."""

    def __init__(self, key: str):
        self.key = key

    def keep(self, job: Job, value: T) -> None:
        st.session_state.setdefault(self.key, {})[run_id(job)] = value

    def has(self, job: Job) -> bool:
        return run_id(job) in st.session_state.get(self.key, {})

    def values(self) -> list[T]:
        return list(st.session_state.get(self.key, {}).values())


def kept_figure(key: str, version: Hashable, build: Callable[[], Any]) -> Any:
    """A figure built once per `version` for this session and reused while the version stays (building a plotly
    figure costs up to ~50 ms of GIL, which a slider move or a live redraw cannot spend). The caller may update
    the figure's data in place: what it gets back is the kept object."""
    kept = st.session_state.get(key)
    if kept is None or kept[0] != version:
        kept = st.session_state[key] = (version, build())
    return kept[1]
