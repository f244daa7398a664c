"""Watch it learn: a fresh tiny GPT-2 pre-trains from random weights in a background job; its loss, the probe
prompt's next-token distribution and greedy samples are drawn live (llmlab.pretrain.live_pretraining)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from llmlab import nexttoken, plots, pretrain
from llmlab.jobs import Job, overshooting
from llmlab.modeling import DEFAULT_MODEL, LoadedModel
from llmlab.pretrain import PretrainConfig, Probe, ProbeConfig, ProbeStart, Samples
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, show_code
from ui.models import shared_model
from ui.runs import kept_figure, run_panel
from ui.settings import NUMBER, SettingsForm, help_of, option

REDRAW = FRAGMENT_UNLESS_RUNNING
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 2e-3, 4e-3, 6e-3, 1e-2, 3e-2, 1e-1, 1.0)
BATCH_SIZES = (4, 8, 16, 32, 64)


@dataclass(frozen=True)
class LiveSettings:
    steps: int = option("Steps", lo=10, hi=20_000, step=10, widget=NUMBER, core=(PretrainConfig, "steps"))
    lr: float = option("Learning rate", choices=LEARNING_RATES, advanced=True, core=(PretrainConfig, "learning_rate"))
    batch: int = option("Batch size", choices=BATCH_SIZES, advanced=True, core=(PretrainConfig, "batch_size"))

    def config(self) -> PretrainConfig:
        return PretrainConfig(steps=int(self.steps), batch_size=int(self.batch), learning_rate=float(self.lr))


@st.cache_resource(show_spinner=False)
def _warm_corpus(model_name: str, device: str) -> threading.Thread:
    """Encode the training corpus in the background once per server, so Start does not wait for it."""
    tokenizer = shared_model(model_name, device).tokenizer
    thread = threading.Thread(target=pretrain.corpus_ids, args=(tokenizer,), daemon=True)
    thread.start()
    return thread


def draw(loaded: LoadedModel) -> None:
    # Always tiny-base's tokenizer: the fresh model has tiny-base's shape, whatever model the sidebar picks.
    tiny = shared_model(DEFAULT_MODEL, loaded.device)
    tokenizer = tiny.tokenizer
    _warm_corpus(DEFAULT_MODEL, loaded.device)
    config = SettingsForm(LiveSettings, "pt_live_").draw(columns=3).config()
    probe_prompt = st.text_input(
        "Probe prompt", ProbeConfig.prompt, max_chars=300, key="pt_live_probe", help=help_of(ProbeConfig, "prompt")
    )
    try:
        nexttoken.encode_prompt(tokenizer, probe_prompt, config.block_size)
    except nexttoken.PromptError as err:
        st.warning(f"{err} The run will probe {ProbeConfig.prompt!r} instead.", icon="✍️")
        probe_prompt = ProbeConfig.prompt
    probe = ProbeConfig(prompt=probe_prompt)
    show_code(pretrain.sample_batch, pretrain.pretrain)

    job = run_panel(
        "pt_live",
        lambda: Job("pretrain-live", lambda job: pretrain.live_pretraining(job, tokenizer, config, probe)),
        lambda job: draw_live_run(job, tokenizer),
        start_label="Start training",
        idle_message=(
            f"Start pre-trains a fresh {tiny.n_params / 1e6:.2f}M-parameter GPT-2 (random weights, seed "
            f"{config.seed}) on the generated corpus: {config.batch_size} sequences × {config.block_size} tokens "
            "per step."
        ),
    )
    if job is None:
        st.caption("Before training, every token is about equally likely: the loss starts near ln V.")


def draw_live_run(job: Job, tokenizer) -> None:
    """Drawn every 0.5 s while the run is live. Building plotly figures is the costly part of a redraw, and it
    holds the GIL the training thread needs: a redraw that brings only new loss points updates the kept loss
    curve's data, and the probe charts are rebuilt only when a new probe arrived."""
    token = (id(job), job.started_at)
    metrics = job.snapshot()
    probes = job.notes_of(Probe)
    samples = job.notes_of(Samples)
    start = next(iter(job.notes_of(ProbeStart)), ProbeStart(ProbeConfig.prompt, None, len(tokenizer)))
    vocab = len(tokenizer)
    if not metrics:
        st.caption("Preparing the corpus and a fresh model…")
    else:
        last = metrics[-1]
        rate = last["tokens"] / max(last["elapsed_s"], 1e-9)
        st.caption(
            f"Step {int(last['step']):,}: loss {last['loss']:.3f} nats/token, {int(last['tokens']):,} tokens seen, "
            f"{rate:,.0f} tokens/s"
        )
        steps, losses = [m["step"] for m in metrics], [m["loss"] for m in metrics]
        if overshooting(losses, pretrain.diverged_loss(vocab)):
            st.warning(
                f"The loss is {losses[-1]:.1f} nats/token, far above ln V = {math.log(vocab):.2f}, the loss of a "
                "uniform guess: the learning rate is too high, each update overshoots and the model got worse "
                f"than guessing. Stop and try a smaller one (the default is {PretrainConfig.learning_rate:g}).",
                icon="📈",
            )
        loss = kept_figure(
            "pt_live_loss_figure",
            token,
            lambda: plots.loss_curve(
                steps,
                losses,
                title="Training loss of the fresh model",
                start_line=math.log(vocab),
                start_label=f"ln V = ln {vocab} = {math.log(vocab):.2f}: a uniform guess",
            ),
        )
        loss.data[0].x, loss.data[0].y = steps, losses  # new data, same figure
        chart(loss, key="pt_live_loss")
    if probes:
        _draw_probes(probes, metrics, tokenizer, start, token)
    if samples:
        st.markdown(f"**Greedy samples at step {samples[-1].step}**")
        st.text("\n".join(samples[-1].texts))
        if len(samples) > 1:
            with st.expander("Samples at every checkpoint"):
                st.text("\n\n".join(f"step {s.step}:\n" + "\n".join(s.texts) for s in samples))


def _draw_probes(probes: list[Probe], metrics: list[dict], tokenizer, start: ProbeStart, token: tuple) -> None:
    answer = start.answer
    answer_id = tokenizer(answer, add_special_tokens=False)["input_ids"][0] if answer else None
    latest = probes[-1]
    probs = torch.from_numpy(latest.probs)
    top1 = [int(np.argmax(p.probs)) for p in probes]

    def probe_figures():  # rebuilt only when a new probe arrived
        tops = nexttoken.top_tokens(probs, tokenizer, 10)
        bars = plots.next_token_bars(
            tops,
            title=f"{start.prompt!r} → next token at step {latest.step}",
            highlight_id=answer_id if answer_id is not None else tops[0].token_id,
        )
        tracked = list(dict.fromkeys(top1))[-6:]  # every token that was ever the top-1 (latest six)
        if answer_id is not None and answer_id not in tracked:
            tracked.append(answer_id)
        lines = {nexttoken.readable_piece(tokenizer, t): [float(p.probs[t]) for p in probes] for t in tracked}
        return bars, plots.token_probability_lines(
            [p.step for p in probes],
            lines,
            title="The probe's top-1 tokens so far: probability as training goes on",
            highlight=answer,
        )

    bars, lines = kept_figure("pt_live_probe_figures", (token, len(probes)), probe_figures)
    chart(bars, key="pt_live_probe_chart")
    if answer_id is not None:
        since = len(top1)  # index of the first probe from which the answer stays the top-1
        while since and top1[since - 1] == answer_id:
            since -= 1
        if since == len(top1):
            st.caption(f"{answer!r} is not the top-1 yet (p = {float(probs[answer_id]):.3f} now).")
        else:
            step = probes[since].step
            seconds = next((m["elapsed_s"] for m in metrics if m["step"] == step), 0.0)
            st.success(
                f"{answer!r} has been the top-1 since step {step} ({seconds:.1f} s of training), "
                f"now at p = {float(probs[answer_id]):.2f}.",
                icon="🎯",
            )
    chart(lines, key="pt_live_lines")
