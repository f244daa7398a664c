"""The trl/transformers settings that every training demo shares, in one place.

The demos run small models for a few hundred steps inside a web server, so each trainer must: log every step
(the live charts read those logs), write nothing to disk and report nowhere, keep float32 on CPU, load data
in the calling thread, and be reproducible from one seed.

Several sessions train at once (`llmlab.jobs.MAX_RUNNING`), each in its own thread. By default every
`TrainingArguments` resets accelerate's process-wide state (`AcceleratorState._reset_state`), which made a
run that was training at that moment fail with "`AcceleratorState` object has no attribute
`num_processes`". So the state is configured once per process, and every config uses it as it is
(`accelerator_config={"use_configured_state": True}`).

    DPOConfig(output_dir=tmp, beta=0.1, max_steps=50, **demo_trainer_args("cpu", seed=0))
"""

from __future__ import annotations

import threading

# The learning rates every demo's slider offers (one grid for all trainers, the pre-training loop too): each
# default is on it, and its top end is there on purpose, to see a run diverge.
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 4e-3, 6e-3, 1e-2, 3e-2, 0.1, 1.0, 10.0, 100.0)

_state_lock = threading.Lock()


def configure_process_state(device: str) -> None:
    """Initialise accelerate's shared state once for this process (later calls keep it)."""
    from accelerate import PartialState

    with _state_lock:
        if not PartialState._shared_state:
            PartialState(cpu=device == "cpu")


def demo_trainer_args(device: str, seed: int) -> dict:
    """Keyword arguments for any trl config (SFTConfig, RewardConfig, RLOOConfig, DPOConfig…)."""
    configure_process_state(device)
    return {
        "report_to": "none",
        "save_strategy": "no",
        "bf16": False,
        "activation_checkpointing": False,
        "logging_steps": 1,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "use_cpu": device == "cpu",
        "seed": seed,
        "data_seed": seed,
        "accelerator_config": {"use_configured_state": True},
    }
