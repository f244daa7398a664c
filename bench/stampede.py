"""Stampede: the moment a workshop starts. A fresh `streamlit run app.py`, and as soon as it answers, N sessions
arrive within `spread_s` seconds, spread over every page (the room opening the link at once). Each session opens
its page as a deep link, over Streamlit's own websocket protocol (bench/load_test.py's client).

Reported: errors (a traceback or the app's "Something went wrong" message in any session, a run that never
finished, a traceback in the server log), and per page the time from the session's arrival to its first chart
(a plotly or graphviz chart: the demo drawn) and to its run finished. Run 10 times in a row for issue 13's target.

    python -m bench.stampede --sessions 30 --repeats 10
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field

from bench.cold_start import label, page_names
from bench.load_test import Session, streamlit_server
from bench.report import Row, print_table


@dataclass
class StampedeResult:
    sessions: int
    errors: list[str] = field(default_factory=list)
    first_chart_s: dict[str, list[float]] = field(default_factory=dict)  # page -> seconds after arrival
    finished_s: dict[str, list[float]] = field(default_factory=dict)  # page -> seconds after arrival
    server_up_s: float = 0.0  # process start -> accepting connections


async def _arrive(url: str, page: str, delay_s: float, index: int, result: StampedeResult, timeout_s: float) -> None:
    await asyncio.sleep(delay_s)
    session = Session(url, f"session {index} ({label(page)})", run_timeout_s=timeout_s)
    try:
        await session.connect()
        arrived = time.perf_counter()
        await session.goto(page)
        result.finished_s.setdefault(page, []).append(time.perf_counter() - arrived)
        if session.first_chart_at is not None:
            result.first_chart_s.setdefault(page, []).append(session.first_chart_at - arrived)
        else:
            result.errors.append(f"{session.name}: no chart was drawn")
    except Exception as err:  # noqa: BLE001  (every failure is counted, the other sessions go on)
        result.errors.append(f"{session.name}: {err}")
    finally:
        await session.close()
        result.errors.extend(session.errors)


def stampede(sessions: int = 30, spread_s: float = 2.0, timeout_s: float = 180.0, seed: int = 0) -> StampedeResult:
    """One fresh server, `sessions` arrivals at random times within `spread_s` s of it answering, pages in turn."""
    pages = page_names()
    rng = random.Random(seed)
    result = StampedeResult(sessions)
    with streamlit_server() as server:
        result.server_up_s = time.perf_counter() - server.started

        async def room() -> None:
            await asyncio.gather(
                *(
                    _arrive(server.url, pages[i % len(pages)], rng.uniform(0, spread_s), i, result, timeout_s)
                    for i in range(sessions)
                )
            )

        asyncio.run(room())
        log = server.log_tail(20_000)
        if "Traceback" in log:
            result.errors.append(f"server log has a traceback: ...{log[log.index('Traceback') :][:600]}")
    return result


def _stats(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f} s, max {max(values):.1f} s" if values else "none"


def rows_for(results: list[StampedeResult]) -> list[Row]:
    n = results[0].sessions
    errors = [e for r in results for e in r.errors]
    failed_runs = sum(bool(r.errors) for r in results)
    rows = [
        Row(
            f"stampede, {n} sessions within 2 s on a fresh server: errors",
            f"0 in {len(results)} runs",
            f"{len(errors)} ({failed_runs} of {len(results)} runs had one)"
            + (f" (first: {errors[0][:200]})" if errors else ""),
            ok=not errors,
        )
    ]
    for page in page_names():
        charts = [t for r in results for t in r.first_chart_s.get(page, [])]
        finished = [t for r in results for t in r.finished_s.get(page, [])]
        rows.append(Row(f"  {label(page)}: arrival -> first chart", "", f"{_stats(charts)} ({len(charts)} sessions)"))
        rows.append(Row(f"  {label(page)}: arrival -> run finished", "", _stats(finished)))
    up = [r.server_up_s for r in results]
    rows.append(Row("  server accepting connections after", "", _stats(up)))
    return rows


def run(sessions: int = 30, repeats: int = 3) -> list[Row]:
    return rows_for([stampede(sessions, seed=i) for i in range(repeats)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="fresh servers, one after another")
    parser.add_argument("--spread", type=float, default=2.0, help="seconds over which the sessions arrive")
    args = parser.parse_args()
    results = []
    for i in range(args.repeats):
        result = stampede(args.sessions, args.spread, seed=i)
        print(f"  run {i + 1}: {len(result.errors)} errors {result.errors[:2]}", flush=True)
        results.append(result)
    print_table(rows_for(results), "Stampede (websocket sessions on 127.0.0.1, fresh server each run)")


if __name__ == "__main__":
    main()
