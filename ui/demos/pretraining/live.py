"""Watch it learn: a fresh tiny GPT-2 pre-trains from random weights in a background job; its loss, the probe
prompt's next-token distribution and greedy samples are drawn live (llmlab.pretrain.live_pretraining)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import streamlit as st

from llmlab import nexttoken, pretrain
from llmlab.jobs import Job
from llmlab.modeling import DEFAULT_MODEL, LoadedModel
from llmlab.pretrain import PretrainConfig, ProbeConfig
from llmlab.trainargs import LEARNING_RATES
from ui.demos.pretraining.live_view import draw_live_run
from ui.download import download_button, note_start, started
from ui.frame import FRAGMENT_UNLESS_RUNNING, show_code
from ui.models import shared_model
from ui.runs import run_panel
from ui.settings import NUMBER, SettingsForm, help_of, option

REDRAW = FRAGMENT_UNLESS_RUNNING
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
        lambda: note_start(
            Job("pretrain-live", lambda job: pretrain.live_pretraining(job, tokenizer, config, probe)),
            DEFAULT_MODEL,
            tokenizer,
            config,
        ),
        lambda job: draw_live_run(job, tokenizer),  # ui/demos/pretraining/live_view.py
        start_label="Start training",
        idle_message=(
            f"Start pre-trains a fresh {tiny.n_params / 1e6:.2f}M-parameter GPT-2 (random weights, seed "
            f"{config.seed}) on the generated corpus: {config.batch_size} sequences × {config.block_size} tokens "
            "per step."
        ),
    )
    if job is None:
        st.caption("Before training, every token is about equally likely: the loss starts near ln V.")
    elif not job.running and job.result is not None and job.snapshot() and (start := started(job)):
        last = job.snapshot()[-1]
        metrics = {
            "steps": int(last["step"]),
            "final loss (nats/token)": last["loss"],
            "tokens seen": int(last["tokens"]),
        }
        download_button("pretraining", job.result, start.tokenizer, start.config, start.start_model, metrics,
                        key="pt_live_download")  # fmt: skip
