"""The "take it home" button under a finished run: the trained model as a Hugging Face folder in a zip
(llmlab.export), with its model card and a script that reproduces the run.

The zip is built only when the button is clicked (the pinned Streamlit 1.67 takes a callable as `data` and runs it
on a worker thread, not in the script run), and once per run: a second click gets the same bytes. The model is only
read (llmlab.export saves copies of its configs), so a run's model shared with other tabs stays as it is.

    download_button("sft", model, tokenizer, run_config, "tiny-base", {"steps": 60}, key="sft_live_download")
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import streamlit as st

from llmlab import export

if TYPE_CHECKING:
    from llmlab.jobs import Job

LABEL = "Download this model (Hugging Face folder, zip)"

# The zips built so far, per model and per name (its settings and final metrics): a second click reuses the
# bytes, and they go when the model does (a Reset, the session's end).
_built: weakref.WeakKeyDictionary[Any, dict[tuple, bytes]] = weakref.WeakKeyDictionary()
_built_lock = threading.Lock()


@dataclass(frozen=True)
class RunStart:
    """A job note made when a run starts: what its download must name as it was then (the settings form and the
    sidebar's model may have moved on by the time the run is done)."""

    start_model: str  # the model's name, e.g. loaded.name ("tiny-base")
    tokenizer: Any
    config: Any = None  # the run's settings dataclass (None where each sub-run has its own, e.g. a comparison)


def note_start(job: Job, start_model: str, tokenizer: Any, config: Any = None) -> Job:
    """Note a RunStart on a new job (in a run panel's make_job) and return the job."""
    job.note(RunStart(start_model, tokenizer, config))
    return job


def started(job: Job) -> RunStart | None:
    """The RunStart noted on the job, if any."""
    notes = job.notes_of(RunStart)
    return notes[0] if notes else None


def zip_builder(
    name: str,
    kind: str,
    model: Any,
    tokenizer: Any,
    config: Any,
    start_model: str,
    metrics: Mapping[str, Any] | None = None,
    *,
    reward_config: Any = None,
) -> Callable[[], bytes]:
    """A no-argument function that returns the run's zip, built on its first call and kept for the next. `name` is
    its export_name (the settings), the metrics tell apart runs with the same settings."""
    metrics = dict(metrics or {})
    memo_key = (name, repr(sorted(metrics.items())))

    def build() -> bytes:
        with _built_lock:
            cached = _built.get(model, {}).get(memo_key)
        if cached is not None:
            return cached
        data = export.export_zip(kind, model, tokenizer, config, start_model, metrics, reward_config=reward_config)
        with _built_lock:
            _built.setdefault(model, {})[memo_key] = data
        return data

    return build


def _load_hint(kind: str, name: str, start_model: str) -> str:
    """One line: how to load the unzipped folder, and what else it holds."""
    if kind == "lora":
        base = f'AutoModelForCausalLM.from_pretrained("{export.base_reference(start_model)}")'
        return (
            f"Unzip `{name}.zip`: a LoRA adapter for `{start_model}`, loaded with "
            f'`PeftModel.from_pretrained({base}, "{name}")`; MODEL_CARD.md says how it was made.'
        )
    auto = "AutoModelForSequenceClassification" if kind == "reward" else "AutoModelForCausalLM"
    return (
        f'Unzip `{name}.zip`, then `{auto}.from_pretrained("{name}")`. Its MODEL_CARD.md says how it was made; '
        "`reproduce.py` trains it again from the repository's root."
    )


def download_button(
    kind: str,
    model: Any,
    tokenizer: Any,
    config: Any,
    start_model: str,
    metrics: Mapping[str, Any] | None = None,
    *,
    key: str,
    reward_config: Any = None,
) -> str:
    """Draw the download button for a finished run's model and a one-line caption on loading it; returns the
    zip's file name. `kind` is one of llmlab.export.KINDS, `config` the run's settings dataclass, `metrics` its
    final numbers for the model card ("steps": the steps it actually ran), `reward_config` an RL run's reward
    model's RewardRunConfig (None for the correctness reward). Start `key` with the page's prefix."""
    name = export.export_name(kind, config, start_model, metrics, reward_config=reward_config)
    file_name = f"{name}.zip"
    st.download_button(
        LABEL,
        data=zip_builder(name, kind, model, tokenizer, config, start_model, metrics, reward_config=reward_config),
        file_name=file_name,
        mime="application/zip",
        key=key,
        icon="📦",
        on_click="ignore",  # a download needs no rerun (and none interrupts a live view)
        help="Config, safetensors weights and tokenizer files (loadable with transformers, no remote code), "
        "MODEL_CARD.md (start model, settings, steps, final metrics, date) and reproduce.py.",
    )
    st.caption(_load_hint(kind, name, start_model))
    return file_name
