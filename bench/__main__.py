"""Every benchmark, one table: `python -m bench` (or `python -m bench --only load_test cold_start`).

Runs each module of bench/ that has `run() -> list[Row]` (bench_*.py, cold_start, load_test), one after
another, each in its own Python process (a crash, a hang or a torch setting in one cannot spoil the others),
and prints ONE table (metric, target, measured, ratio, ok) under a description of the machine. A module that
fails or times out gets a row with its error. The same report is written as markdown to bench/LATEST.md.

    python -m bench                        # everything (the load test alone takes a few minutes)
    python -m bench --only bench_sft       # some modules
    python -m bench --list                 # what would run
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.report import Row, print_table
from llmlab.threadenv import set_thread_env

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LATEST = BENCH / "LATEST.md"
LAST = ("cold_start", "stampede", "load_test")  # after the page benchmarks: they start their own servers


def module_names() -> list[str]:
    """bench_*.py in name order, then cold_start and load_test (those that exist)."""
    names = sorted(p.stem for p in BENCH.glob("bench_*.py"))
    return names + [n for n in LAST if (BENCH / f"{n}.py").exists()]


# -- one module, in a child process ---------------------------------------------------------------------


def child(name: str, out: str) -> int:
    """Import bench.<name>, call run(), write its rows as JSON to `out` (or the error)."""
    try:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "run", None)
        if not callable(run):
            result: dict = {"skip": "no run()"}
        else:
            rows = run()
            result = {"rows": [dataclasses.asdict(r) for r in rows]}
    except BaseException as err:  # noqa: BLE001  (reported in the table)
        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}".strip()}
    Path(out).write_text(json.dumps(result))
    return 0


def run_module(name: str, timeout_s: float) -> tuple[list[Row], float, str | None]:
    """(rows, seconds, skip reason) of one module; a failure becomes a row."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmlab-bench-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "bench", "--child", name, str(out)]
        # the module's own prints go to stderr: stdout is for the table
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr, start_new_session=True)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)  # its servers too: it started them in its own process group
            proc.wait()
            return [Row(f"{name}: did not finish", "", f"stopped after {timeout_s:.0f} s", ok=False)], timeout_s, None
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            raise
        elapsed = time.perf_counter() - start
        if not out.exists():
            return [Row(f"{name}: crashed", "", f"exit status {proc.returncode}, no result", ok=False)], elapsed, None
        result = json.loads(out.read_text())
    if "skip" in result:
        return [], elapsed, result["skip"]
    if "error" in result:
        return [Row(f"{name}: failed", "", f"error: {result['error'][:300]}", ok=False)], elapsed, None
    return [Row(**r) for r in result["rows"]], elapsed, None


# -- the machine ---------------------------------------------------------------------------------------


def _cpuinfo_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    return float("nan")


def machine_lines() -> list[str]:
    set_thread_env()
    import streamlit
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"CPU: {_cpuinfo_model()}, {os.cpu_count()} logical CPUs ({usable} usable by this process)",
        f"RAM: {_ram_gib():.1f} GiB; GPU: {gpu}; torch threads: {torch.get_num_threads()}",
        f"Load average at start: {load} (other work on the machine makes timings noisy)",
        f"Python {platform.python_version()}, torch {torch.__version__}, streamlit {streamlit.__version__}, "
        f"{platform.system()} {platform.release()}",
    ]


# -- the report ----------------------------------------------------------------------------------------


def table_text(rows: list[Row], title: str) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print_table(rows, title)
    return buffer.getvalue()


def report(rows: list[Row], machine: list[str], started: str, elapsed_s: float, command: str) -> str:
    with_target = [r for r in rows if r.ok is not None]
    missed = [r for r in with_target if not r.ok]
    summary = f"{len(with_target) - len(missed)} of {len(with_target)} targets met" + (
        f"; missed: {', '.join(r.metric for r in missed)}" if missed else ""
    )
    lines = [
        "# Latest benchmark run",
        "",
        f"`{command}`, started {started}, took {elapsed_s / 60:.1f} min.",
        "",
        *[f"- {line}" for line in machine],
        table_text(rows, "Benchmarks").rstrip(),
        "",
        summary,
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these modules (e.g. load_test bench_sft)")
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per module before it is stopped")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {LATEST.relative_to(ROOT)}")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    names = module_names()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        unknown = [n for n in args.only if n.removesuffix(".py") not in names]
        if unknown:
            parser.error(f"unknown module(s) {unknown}; choose from {names}")
        names = [n for n in names if n in {o.removesuffix(".py") for o in args.only}]

    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine = machine_lines()
    start = time.perf_counter()
    rows: list[Row] = []
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        module_rows, elapsed, skipped = run_module(name, args.timeout)
        if skipped:
            print(f"[bench] {name}: skipped ({skipped})", file=sys.stderr)
            continue
        rows.append(Row(f"[{name}, {elapsed:.0f} s]", "", ""))
        rows += module_rows
        print(f"[bench] {name}: {len(module_rows)} rows in {elapsed:.0f} s", file=sys.stderr, flush=True)

    command = "python -m bench" + (f" --only {' '.join(names)}" if args.only else "")
    text = report(rows, machine, started, time.perf_counter() - start, command)
    print(text)
    if not args.no_write:
        LATEST.write_text(text)
        print(f"(written to {LATEST.relative_to(ROOT)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
