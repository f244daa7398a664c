"""The live view of a pre-training run (ui/demos/pretraining/live.py's run panel draws it every 0.5 s): the loss
curve, the probe prompt's next-token distribution and its leaders over time, and greedy samples. Not a demo of
its own."""

from __future__ import annotations

import math

import streamlit as st
import torch

from llmlab import nexttoken, plots, pretrain
from llmlab.jobs import Job, overshooting
from llmlab.pretrain import PretrainConfig, Probe, ProbeConfig, ProbeStart, Samples
from ui.frame import chart
from ui.runs import kept_figure


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

    def probe_figures():  # rebuilt only when a new probe arrived
        tops = nexttoken.top_tokens(probs, tokenizer, 10)
        bars = plots.next_token_bars(
            tops,
            title=f"{start.prompt!r} → next token at step {latest.step}",
            highlight_id=answer_id if answer_id is not None else tops[0].token_id,
        )
        leaders = pretrain.leader_lines(probes, also=answer_id)
        lines = {nexttoken.readable_piece(tokenizer, t): line for t, line in leaders.items()}
        return bars, plots.token_probability_lines(
            [p.step for p in probes],
            lines,
            title="The probe's top-1 tokens so far: probability as training goes on",
            highlight=answer,
        )

    bars, lines = kept_figure("pt_live_probe_figures", (token, len(probes)), probe_figures)
    chart(bars, key="pt_live_probe_chart")
    since = pretrain.top1_since(probes, answer_id) if answer_id is not None else None
    if answer_id is not None and since is None:
        st.caption(f"{answer!r} is not the top-1 yet (p = {float(probs[answer_id]):.3f} now).")
    elif since is not None:
        seconds = next((m["elapsed_s"] for m in metrics if m["step"] == since.step), 0.0)
        st.success(
            f"{answer!r} has been the top-1 since step {since.step} ({seconds:.1f} s of training), "
            f"now at p = {float(probs[answer_id]):.2f}.",
            icon="🎯",
        )
    chart(lines, key="pt_live_lines")
