"""Cold start and first views, measured with the websocket client of bench/load_test.py (what a browser waits for).

- Cold start: a fresh `streamlit run app.py` process to the first run of a page (app.py, and each page
  opened by deep link on its own fresh server). The client connects as soon as the server accepts
  connections, like a browser tab that was already open. Three times: the page drawn (a lesson page's card
  with its "Think it through" questions, the home page's four stages: everything but the live demo and the
  sidebar's model box, which wait for the server's warm-up; see ui/warm.py), target <= 5 s; the first demo
  chart drawn (the open tab's first plotly chart, or a graphviz diagram), target <= 5 s; and the whole run
  finished, no target.
- The same in a real browser (Debian's Chromium, when installed): a fresh server, a browser already open that
  loads the page as soon as the server answers; the time from `streamlit run` to the first chart drawn on screen
  (a plotly chart's SVG or a graphviz diagram), target <= 5 s (issue 13; 10-14.6 s before the warm-up).
- First view on a warm server: after one warm-up session has visited every page (models and caches loaded),
  a new session (new websocket, new Streamlit session) opens a page; the time from connecting to its first
  `script_finished`. The median of a few fresh sessions per page. Target: <= 2 s.

    python -m bench.cold_start
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from streamlit.source_util import page_icon_and_name

from bench.browser import CHROMIUM, CHROMIUM_ARGS, browser_available
from bench.load_test import ROOT, Session, streamlit_server
from bench.report import Row, print_table

MAX_COLD_S = 5.0
MAX_FIRST_VIEW_S = 2.0


def page_names() -> list[str]:
    """The url paths: "" for app.py, then each file of pages/ as Streamlit names it (1_Pretraining.py -> Pretraining)."""
    return [""] + [page_icon_and_name(path)[1] for path in sorted((ROOT / "pages").glob("*.py"))]


def label(page: str) -> str:
    return f"/{page}" if page else "app.py"


DRAWN_MARK = "Think it through"  # a lesson page's drawn: its questions' heading arrived (after the whole card)
HOME_DRAWN_MARK = "4 · DPO"  # the home page's: the last of its four stage headings arrived


async def _first_view(
    url: str, page: str, retry_until: float | None = None
) -> tuple[float, float | None, float | None, float, list[str]]:
    """(when the websocket opened, when the page was drawn, when its first chart arrived, when the first run
    finished, errors): perf_counter times; drawn and chart are None if the page never showed them."""
    session = Session(url, f"first view {label(page)}", run_timeout_s=180)
    await session.connect(retry_until=retry_until)
    connected = time.perf_counter()
    try:
        await session.goto(page)
        finished = time.perf_counter()
    finally:
        await session.close()
    drawn = session.headings_at.get(DRAWN_MARK if page else HOME_DRAWN_MARK)
    return connected, drawn, session.first_chart_at, finished, session.errors


def cold_start(page: str) -> tuple[float, float | None, float | None, float, list[str]]:
    """Seconds from process start to accepting the websocket, to the page drawn (None: never), to its first chart
    (None: never), to the first run finished; and the errors seen, on a fresh server."""
    with streamlit_server(wait_healthy=False) as server:
        try:
            connected, drawn, charted, finished, errors = asyncio.run(
                _first_view(server.url, page, retry_until=server.started + 120)
            )
        except Exception as err:  # noqa: BLE001  (reported in the table)
            raise RuntimeError(f"{label(page)}: {err}\n{server.log_tail(800)}") from err

    def since_start(at: float | None) -> float | None:
        return None if at is None else at - server.started

    return connected - server.started, since_start(drawn), since_start(charted), finished - server.started, errors


# plotly, graphviz, or a chart computed in the browser (ui/instant.py: Playwright's CSS pierces its shadow root)
FIRST_CHART = ".js-plotly-plot .main-svg, [data-testid='stGraphVizChart'] svg, .instant svg.chart"


def browser_cold_start(page: str) -> float:
    """Seconds from starting `streamlit run` to the page's first chart drawn in Chromium (opened by deep link as
    soon as the server answers; the browser itself was started before the server)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_context(viewport={"width": 1400, "height": 2000}).new_page()
        with streamlit_server(wait_healthy=False) as server:
            while True:
                try:
                    tab.goto(f"{server.url}/{page}", timeout=30_000)
                    break
                except PlaywrightError:  # not listening yet
                    if time.perf_counter() - server.started > 120:
                        raise
                    time.sleep(0.05)
            tab.wait_for_selector(FIRST_CHART, timeout=120_000)
            charted = time.perf_counter() - server.started
        browser.close()
    return charted


def warm_first_views(pages: list[str], repeats: int = 3) -> dict[str, tuple[list[float], list[str]]]:
    """Per page: the first-view times (s) of `repeats` fresh sessions on one warm server, and any errors."""
    out: dict[str, tuple[list[float], list[str]]] = {}
    with streamlit_server() as server:

        async def measure() -> None:
            warm = Session(server.url, "warm-up", run_timeout_s=300)
            await warm.connect()
            try:
                for page in pages:
                    await warm.goto(page)
            finally:
                await warm.close()
            for page in pages:
                times, errors = [], list(warm.errors)
                for _ in range(repeats):
                    start = time.perf_counter()
                    _, _, _, finished, session_errors = await _first_view(server.url, page)
                    times.append(finished - start)
                    errors += session_errors
                out[page] = (times, errors)

        asyncio.run(measure())
    return out


def run(pages: list[str] | None = None, repeats: int = 3) -> list[Row]:
    pages = page_names() if pages is None else pages
    rows = []
    cold: dict[str, float] = {}
    for page in pages:
        what = "card and questions" if page else "four stages"
        metric = f"cold start: `streamlit run` -> {label(page)} drawn ({what})"
        try:
            up_s, drawn_s, chart_s, finished_s, errors = cold_start(page)
        except Exception as err:  # noqa: BLE001
            rows.append(Row(metric, f"<= {MAX_COLD_S:g} s", f"failed: {str(err)[:200]}", ok=False))
            continue
        cold[page] = finished_s
        measured = "never" if drawn_s is None else f"{drawn_s:.2f} s (server accepting after {up_s:.2f} s)"
        if errors:
            measured += f"; errors: {errors[0][:160]}"
        ok = drawn_s is not None and drawn_s <= MAX_COLD_S and not errors
        rows.append(Row(metric, f"<= {MAX_COLD_S:g} s", measured, ok=ok))
        if page:
            chart = "never" if chart_s is None else f"{chart_s:.2f} s"
            ok = chart_s is not None and chart_s <= MAX_COLD_S
            rows.append(Row("  ... its first demo chart drawn", f"<= {MAX_COLD_S:g} s", chart, ok=ok))
        demo = "live demo and model box" if page else "model box"
        rows.append(Row(f"  ... and the {demo} ready (first run finished)", "", f"{finished_s:.2f} s"))
    if browser_available():
        for page in pages:
            metric = f"cold start in Chromium: `streamlit run` -> {label(page)} first chart on screen"
            try:
                seconds = browser_cold_start(page)
            except Exception as err:  # noqa: BLE001
                rows.append(Row(metric, f"<= {MAX_COLD_S:g} s", f"failed: {str(err)[:200]}", ok=False))
                continue
            rows.append(Row(metric, f"<= {MAX_COLD_S:g} s", f"{seconds:.2f} s", ok=seconds <= MAX_COLD_S))
    try:
        views = warm_first_views(pages, repeats)
    except Exception as err:  # noqa: BLE001
        rows.append(Row("first view, warm server", f"<= {MAX_FIRST_VIEW_S:g} s", f"failed: {str(err)[:200]}", ok=False))
        return rows
    for page, (times, errors) in views.items():
        median = statistics.median(times)
        measured = f"median {median:.2f} s, max {max(times):.2f} s ({len(times)} fresh sessions)"
        if errors:
            measured += f"; errors: {errors[0][:160]}"
        ratio = f"{median / cold[page]:.2f}x cold start" if page in cold else ""
        rows.append(
            Row(
                f"first view, warm server: {label(page)}",
                f"<= {MAX_FIRST_VIEW_S:g} s",
                measured,
                ratio,
                median <= MAX_FIRST_VIEW_S and not errors,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", nargs="+", help='url paths ("" = app.py); default: app.py and every page')
    parser.add_argument("--repeats", type=int, default=3, help="fresh sessions per page on the warm server")
    args = parser.parse_args()
    print_table(run(args.pages, args.repeats), "Cold start and first views")


if __name__ == "__main__":
    main()
