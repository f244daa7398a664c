"""Data quality: corrupt part of the corpus and compare short pre-training runs (llmlab/dataquality.py). The
saved runs (several seeds) draw at once: first which capital the model says under the two fact corruptions (the
right one, the repeated lie, random noise's wrong ones: "frequency wins"), then the selected corruption's loss on
clean text and p(right capital). Start re-runs clean data, 5% noise (the card's question) and the chosen level
live."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from llmlab import dataquality, plots
from llmlab.dataquality import NoiseConfig, NoiseResult, SavedRuns, SeedSpread
from llmlab.jobs import Job
from llmlab.modeling import DEFAULT_MODEL, LoadedModel
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, show_code
from ui.models import shared_model
from ui.runs import current_job, run_panel
from ui.settings import NUMBER, SELECTBOX, SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class NoiseSettings:
    kind: str = option(
        "Corruption", choices=tuple(dataquality.KINDS), labels=dataquality.KINDS, widget=SELECTBOX,
        core=(NoiseConfig, "kind"),
    )  # fmt: skip
    noise: float = option(
        "Your noise level: fraction of documents corrupted", 0.3, lo=0.0, hi=0.9, step=0.05,
        help="The live run compares clean data, 5% noise (the question's) and this level.",
    )  # fmt: skip
    steps: int = option("Steps per run", lo=20, hi=2_000, step=10, widget=NUMBER, core=(NoiseConfig, "steps"))

    def levels(self) -> list[float]:
        return sorted({0.0, 0.05, round(self.noise, 2)})


@st.cache_data(show_spinner=False)
def saved_runs() -> dataquality.SavedRuns | None:
    return dataquality.load_saved_runs()


def draw(loaded: LoadedModel) -> None:
    form = SettingsForm(NoiseSettings, "pt_dq_")
    kind = form.widget("kind")
    noise = form.widget("noise")
    saved = saved_runs()
    job = current_job("pt_dq")
    live = [r for r in job.notes_of(NoiseResult) if r.kind == kind] if job is not None else []
    if saved is None and not live:
        st.info("No precomputed results found: run `python -m llmlab.dataquality`, or press Start below.", icon="ℹ️")
    if saved is not None:
        frequency_wins(saved, noise)
    series: dict[str, list[SeedSpread]] = {}
    if saved is not None:
        seeds = saved.seeds(kind)
        label = f"precomputed ({saved.steps} steps each, {_seeds_label(seeds)})"
        series[label] = saved.spread(kind, "clean_loss")
        level = saved.nearest_level(kind, noise)
        at = {m: next(p for p in saved.spread(kind, m) if p.noise == level) for m in ("clean_loss", "p_correct")}
        clean = {m: saved.spread(kind, m)[0] for m in ("clean_loss", "p_correct", "capitals_right")}
        right = next(p for p in saved.spread(kind, "capitals_right") if p.noise == level)
        st.caption(
            f"Precomputed at {level:.0%} noise (the nearest saved level; {_seeds_label(seeds)}): loss on clean "
            f"text {at['clean_loss'].mean:.3f} nats/token ({at['clean_loss'].mean - clean['clean_loss'].mean:+.3f} "
            f"vs clean data), mean p(right capital) {at['p_correct'].mean:.2f} "
            f"({at['p_correct'].mean - clean['p_correct'].mean:+.2f}), {right.mean:.0f}/40 capitals still the "
            f"top-1 (clean data: {clean['capitals_right'].mean:.0f}/40)."
        )
    live_points = [SeedSpread(r.noise, r.clean_loss, r.clean_loss, r.clean_loss, 1) for r in live]
    live_p = [SeedSpread(r.noise, r.p_correct, r.p_correct, r.p_correct, 1) for r in live]
    if series or live:
        loss_series = dict(series)
        p_series = {label: saved.spread(kind, "p_correct") for label in series} if saved is not None else {}
        if live:
            label = f"your live run ({live[0].steps} steps each)"
            loss_series[label], p_series[label] = live_points, live_p
        chart(
            _with_spread(
                plots.metric_vs_noise(
                    {name: ([p.noise for p in pts], [p.mean for p in pts]) for name, pts in loss_series.items()},
                    "Loss on clean held-out text after training",
                    "loss (nats per token)",
                    noise,
                ),
                loss_series,
            ),
            key="pt_dq_loss",
        )
        chart(
            _with_spread(
                plots.metric_vs_noise(
                    {name: ([p.noise for p in pts], [p.mean for p in pts]) for name, pts in p_series.items()},
                    f"P(right capital), 40 countries ({dataquality.KINDS[kind]})",
                    "mean p(right capital)",
                    noise,
                    percent_y=True,
                ),
                p_series,
            ),
            key="pt_dq_p",
        )

    tokenizer = shared_model(DEFAULT_MODEL, loaded.device).tokenizer
    form.widget("steps")
    settings = form.done()
    show_code(dataquality.corrupt_document, dataquality.capital_beliefs)
    levels = settings.levels()
    config = NoiseConfig(kind=settings.kind, steps=int(settings.steps))

    def work(job: Job) -> list[NoiseResult]:
        return dataquality.noise_experiment(
            tokenizer,
            levels,
            config,
            on_result=job.note,
            on_step=lambda level, m: job.log(noise=level, step=m.step, loss=m.loss),
            stop=job.stop_event,
        )

    run_panel(
        "pt_dq",
        lambda: Job("data-quality", work),
        draw_noise_runs,
        start_label=f"Re-run live: {', '.join(f'{x:.0%}' for x in levels)} noise",
        idle_message=f"Start trains {len(levels)} fresh models of {config.steps} steps each, one per noise level.",
    )


def _seeds_label(seeds: list[int]) -> str:
    return f"mean of {len(seeds)} seeds, bars from the lowest to the highest" if len(seeds) > 1 else f"seed {seeds[0]}"


def _with_spread(fig, series: dict[str, list[SeedSpread]]):
    """Error bars from the lowest to the highest seed on the traces that have more than one seed."""
    for trace, points in zip(fig.data, series.values(), strict=True):
        if any(p.n_seeds > 1 for p in points):
            trace.error_y = {
                "type": "data",
                "array": [p.high - p.mean for p in points],
                "arrayminus": [p.mean - p.low for p in points],
                "thickness": 1,
                "width": 3,
            }
    return fig


def frequency_wins(saved: SavedRuns, noise: float) -> None:
    """The card's "frequency wins": the repeated lie's own probability against random noise's wrong capitals."""
    if not {"random_capital", "repeated_lie"} <= set(saved.results):
        return
    chart(
        dataquality.beliefs_figure(
            saved,
            "The right capital, the repeated lie, random noise's wrong ones",
            noise,
        ),
        key="pt_dq_beliefs",
    )
    level = saved.nearest_level("repeated_lie", noise)

    def mean(kind: str, metric: str) -> float:
        return next(p.mean for p in saved.spread(kind, metric) if p.noise == level)

    lie, top_noise, one_noise = (
        mean("repeated_lie", "p_lie"),
        mean("random_capital", "p_top_wrong"),
        mean("random_capital", "p_wrong_each"),
    )
    right_lie, right_noise = mean("repeated_lie", "p_correct"), mean("random_capital", "p_correct")
    crossing = dataquality.lie_overtakes(saved)
    overtakes = (
        f"The lie overtakes the truth between {crossing[0]:.0%} and {crossing[1]:.0%} corrupted documents."
        if crossing
        else "At the saved levels the lie never overtakes the truth."
    )
    ratio_top, ratio_one = lie / max(top_noise, 1e-9), lie / max(one_noise, 1e-9)
    clean_top = saved.spread("random_capital", "p_top_wrong")[0].mean
    low = (
        " At this rate the lie is still below the likeliest of the 39 wrong capitals, to which even the model "
        f"trained on clean data gives p = {clean_top:.2f}: move the slider up."
        if ratio_top < 1
        else ""
    )
    st.markdown(
        f"**At {level:.0%} corrupted documents** ({_seeds_label(saved.seeds('repeated_lie'))}, {saved.steps} steps "
        f"each): the same wrong capital repeated gets p = {lie:.2f} on average and is the first answer for "
        f"{mean('repeated_lie', 'lie_top1'):.0f} of 40 countries. Random noise at the same rate leaves its likeliest "
        f"wrong capital at p = {top_noise:.2f} and any one wrong capital at {one_noise:.3f}: the repeated lie is "
        f"{ratio_top:.1f}× the likeliest noise capital and {ratio_one:.0f}× a typical one.{low} {overtakes}"
    )
    if right_noise < right_lie:
        st.caption(
            f"What the tiny model shows besides, against the card's hint: the right capital suffers *more* under "
            f"random noise (p = {right_noise:.2f}) than under the repeated lie (p = {right_lie:.2f}) at this level. "
            "After 300 steps this model is still learning which capital goes with which country: random wrong "
            "capitals blur that link (the probability spreads over all 40 capitals), while a repeated lie is a "
            "second consistent answer it learns beside the truth. Noise is outvoted in that no single wrong "
            "capital wins; the truth still pays for it."
        )
    else:
        st.caption(
            f"The right capital also holds up better under random noise (p = {right_noise:.2f}) than under the "
            f"repeated lie (p = {right_lie:.2f}) at this level: noise is outvoted, the lie is not."
        )


def draw_noise_runs(job: Job) -> None:
    runs: dict[str, tuple[list[int], list[float]]] = {}
    for m in job.snapshot():
        steps, losses = runs.setdefault(f"{m['noise']:.0%} noise", ([], []))
        steps.append(int(m["step"]))
        losses.append(m["loss"])
    if not runs:
        st.caption("Corrupting the corpus and building a fresh model…")
        return
    chart(plots.loss_curves(runs, "Training loss of each run (on its own noisy text)"), key="pt_dq_live_loss")
    results = job.notes_of(NoiseResult)
    if results:
        st.dataframe(
            [
                {
                    "noise": f"{r.noise:.0%}",
                    "clean-text loss (nats/token)": round(r.clean_loss, 3),
                    "training loss (nats/token)": round(r.train_loss, 3),
                    "mean p(right capital)": round(r.p_correct, 3),
                    "capitals top-1 (of 40)": r.capitals_right,
                    "mean p(the repeated lie's capital)": round(r.p_lie, 3),
                    "mean p(most likely wrong capital)": round(r.p_top_wrong, 3),
                    "seconds": round(r.seconds, 1),
                }
                for r in results
            ],
            hide_index=True,
            key="pt_dq_table",
        )
