"""Sliders that follow the drag (issue 15), measured in headless Chromium (Debian's, through Playwright).

For each slider: key-press → chart redrawn with new data (the keydown's timestamp to the DOM mutation that put
the new numbers in the chart; then the app is let go idle before the next press), and for the browser-computed
demos (ui/instant.py) the frames per second with a new chart while the thumb is dragged with the mouse button
held. Printed in one run beside:

- the floor of any Streamlit rerun: bench/apps/minimal_slider.py, one slider and one plotly bar chart;
- the same sliders on the rerun path they had before issue 15: the app at commit BEFORE, checked out in a
  temporary git worktree (skipped, with a row saying so, where git or that commit is missing).

    python -m bench --only bench_instant       # or: python -m bench.bench_instant
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import load_test
from bench.browser import CHROMIUM, CHROMIUM_ARGS, browser_available
from bench.report import Row, print_table

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "6980b55"  # the last commit whose sliders were all Streamlit reruns
PRESSES = 24  # key-presses per slider (alternately right and left: the value changes every time)
DRAG_S = 2.0  # seconds of continuous dragging per browser-computed slider
KEY_TARGET_MS, KEY_P90_MS, FPS_TARGET = 50.0, 80.0, 20.0

RLHF_SWEEP = urllib.parse.urlencode({"tab_rlhf": "2 · KL sweep (exact, instant)"})
DPO_LOSS = urllib.parse.urlencode({"tab_dpo": "The loss"})

# In the page: find elements through shadow roots, and time key-press → chart mutation.
MEASURE_JS = """
window.deepQuery = (selector, root = document) => {
  const found = root.querySelector(selector);
  if (found) return found;
  for (const el of root.querySelectorAll("*")) {
    if (el.shadowRoot) {
      const inner = window.deepQuery(selector, el.shadowRoot);
      if (inner) return inner;
    }
  }
  return null;
};
window.benchArm = (signature) => {
  // signature: JS source of a function returning a string that changes when the chart shows new data
  const sig = new Function("return (" + signature + ")();");
  const before = sig();
  const state = { keyAt: null, drawnAt: null, frames: 0, changedFrames: 0 };
  window.benchState = state;
  window.addEventListener("keydown", (e) => { if (state.keyAt === null) state.keyAt = e.timeStamp; }, { capture: true, once: true });
  const check = () => {
    if (state.drawnAt === null && sig() !== before) state.drawnAt = performance.now();
  };
  const observer = new MutationObserver(check);
  const targets = [document.body];
  document.querySelectorAll("*").forEach((el) => el.shadowRoot && targets.push(el.shadowRoot));
  targets.forEach((t) => observer.observe(t, { subtree: true, childList: true, attributes: true, characterData: true }));
  state.stop = () => observer.disconnect();
  // frames with a new chart, for the drag measure
  let last = before;
  const frame = () => {
    const now = sig();
    state.frames += 1;
    if (now !== last) state.changedFrames += 1;
    last = now;
    if (!state.stopped) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
};
"""


@dataclass(frozen=True)
class Slider:
    label: str  # the row's name
    path: str  # url path and query
    control: str  # a selector (looked up through shadow roots) of the <input type=range> to press and drag
    signature: str  # JS: () => a string that changes when the chart is redrawn with new data
    instant: bool  # a browser-computed demo (ui/instant.py): also dragged


def instant_signature() -> str:
    return "() => { const r = window.deepQuery('.instant'); return r ? r.dataset.draws || '' : ''; }"


def plotly_signature(key: str, trace: int) -> str:
    return (
        f"() => {{ const p = document.querySelector('.st-key-{key} .js-plotly-plot');"
        f" if (!p || !p.data) return ''; const t = p.data.at({trace}); return JSON.stringify(t.x); }}"
    )


def instant_slider(label: str, path: str, aria: str) -> Slider:
    return Slider(label, path, f'.instant input[aria-label="{aria}"]', instant_signature(), True)


NOW = [
    instant_slider("Pre-training: temperature (next-token chart)", "Pretraining", "Temperature"),
    instant_slider("RLHF: β on the exact KL sweep", f"RLHF?{RLHF_SWEEP}", "β, the KL coefficient (log scale)"),
    instant_slider("DPO: β on the loss chart", f"DPO?{DPO_LOSS}", "β (drag: the orange curves follow)"),
]
FLOOR = Slider("minimal Streamlit app: one slider, one plotly chart", "", '.st-key-t input[type="range"]',
               plotly_signature("chart", 0), False)  # fmt: skip
OLD = [
    Slider("Pre-training: temperature, rerun path", "Pretraining", '.st-key-pt_temperature input[type="range"]',
           plotly_signature("pt_next_token_chart", -1), False),
    Slider("RLHF: β on the KL sweep, rerun path", f"RLHF?{RLHF_SWEEP}", '.st-key-rl_sweep_beta input[type="range"]',
           plotly_signature("rl_sweep_bars", 1), False),
]  # fmt: skip


def wait_idle(page, quiet_ms: int = 300, timeout_ms: int = 60_000) -> None:
    """No script running (no status widget) for `quiet_ms`."""
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
        page.wait_for_timeout(quiet_ms)
        if not page.evaluate("() => !!document.querySelector('[data-testid=\"stStatusWidget\"]')"):
            return
    raise TimeoutError("the app never went idle")


def open_slider(page, base: str, slider: Slider) -> None:
    page.goto(f"{base}/{slider.path}")
    page.wait_for_function(f"() => window.deepQuery && ({slider.signature})() !== ''", timeout=120_000)
    page.wait_for_function(f"() => !!window.deepQuery({slider.control!r})", timeout=60_000)
    wait_idle(page, 800)


def key_latencies(page, slider: Slider) -> list[float]:
    """Milliseconds from each key-press to the chart's new data in the DOM."""
    control = page.locator(slider.control).first  # Playwright's CSS locators pierce open shadow roots
    control.focus()
    out = []
    for n in range(PRESSES):
        page.evaluate("(s) => window.benchArm(s)", slider.signature)
        control.press("ArrowRight" if n % 2 == 0 else "ArrowLeft")
        page.wait_for_function("() => window.benchState.drawnAt !== null", timeout=60_000)
        out.append(
            page.evaluate(
                "() => { const s = window.benchState; s.stop(); s.stopped = true; return s.drawnAt - s.keyAt; }"
            )
        )
        wait_idle(page)
    return out


def drag_fps(page, slider: Slider) -> float:
    """Frames per second with a new chart while the thumb is dragged back and forth, button held."""
    control = page.locator(slider.control).first
    box = control.bounding_box()
    value, lo, hi = control.evaluate("e => [Number(e.value), Number(e.min), Number(e.max)]")
    y = box["y"] + box["height"] / 2
    x_at = lambda f: box["x"] + 8 + f * (box["width"] - 16)  # noqa: E731  (the thumb's centre travels inside)
    page.mouse.move(x_at((value - lo) / (hi - lo)), y)
    page.mouse.down()
    page.evaluate("(s) => window.benchArm(s)", slider.signature)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < DRAG_S:
        n += 1
        page.mouse.move(x_at(abs((n % 60) - 30) / 30), y)  # back and forth across the track
    elapsed = time.perf_counter() - start
    changed = page.evaluate(
        "() => { const s = window.benchState; s.stopped = true; s.stop(); return s.changedFrames; }"
    )
    page.mouse.up()
    wait_idle(page)
    return changed / elapsed


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def measure(browser, base: str, slider: Slider) -> tuple[list[float], float | None]:
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    context.add_init_script(MEASURE_JS)
    page = context.new_page()
    try:
        open_slider(page, base, slider)
        keys = key_latencies(page, slider)
        fps = drag_fps(page, slider) if slider.instant else None
        return keys, fps
    finally:
        context.close()


@contextlib.contextmanager
def before_checkout() -> Iterator[Path | None]:
    """The app at BEFORE in a temporary git worktree (None where git or the commit is missing)."""
    with tempfile.TemporaryDirectory(prefix="llmlab-before-") as tmp:
        where = Path(tmp) / "app"
        made = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), BEFORE], capture_output=True
        )
        if made.returncode != 0:
            yield None
            return
        try:
            yield where
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)


def key_row(slider: Slider, keys: list[float], target: bool, floor: list[float] | None = None) -> Row:
    median, high = statistics.median(keys), p90(keys)
    ratio = f"{statistics.median(floor) / median:.1f}× faster than the floor" if floor else ""
    return Row(
        f"{slider.label}: key-press → chart redrawn, median / p90 of {len(keys)}",
        f"<= {KEY_TARGET_MS:.0f} / {KEY_P90_MS:.0f} ms" if target else "",
        f"{median:.0f} / {high:.0f} ms",
        ratio,
        ok=(median <= KEY_TARGET_MS and high <= KEY_P90_MS) if target else None,
    )


def run() -> list[Row]:
    if not browser_available():
        return [Row("browser sliders", "", "skipped: no Chromium or Playwright", ok=None)]
    from playwright.sync_api import sync_playwright

    rows: list[Row] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        with load_test.streamlit_server(script=str(ROOT / "bench" / "apps" / "minimal_slider.py")) as server:
            floor, _ = measure(browser, server.url, FLOOR)
        rows.append(key_row(FLOOR, floor, target=False))
        now: dict[int, list[float]] = {}
        with load_test.streamlit_server() as server:
            for n, slider in enumerate(NOW):
                keys, fps = measure(browser, server.url, slider)
                now[n] = keys
                rows.append(key_row(slider, keys, target=True, floor=floor))
                rows.append(
                    Row(
                        f"{slider.label}: frames with a new chart while dragged",
                        f">= {FPS_TARGET:.0f} fps",
                        f"{fps:.0f} fps",
                        ok=fps >= FPS_TARGET,
                    )  # fmt: skip
                )
        with before_checkout() as old:
            if old is None:
                rows.append(Row(f"rerun path (the app at {BEFORE})", "", "skipped: no git worktree", ok=None))
            else:
                with load_test.streamlit_server(cwd=old) as server:
                    for n, slider in enumerate(OLD):
                        keys, _ = measure(browser, server.url, slider)
                        rows.append(key_row(slider, keys, target=False))
                        ratio = statistics.median(keys) / statistics.median(now[n])
                        rows[-1] = dataclasses.replace(rows[-1], ratio=f"{ratio:.1f}× the browser-computed demo's")
        browser.close()
    return rows


if __name__ == "__main__":
    print_table(run(), "Sliders that follow the drag (headless Chromium)")
