"""The trl/transformers settings that every training demo shares, in one place.

The demos run small models for a few hundred steps inside a web server, so each trainer must: log every step
(the live charts read those logs), write nothing to disk and report nowhere, keep float32 on CPU, load data
in the calling thread, and be reproducible from one seed.

    DPOConfig(output_dir=tmp, beta=0.1, max_steps=50, **demo_trainer_args("cpu", seed=0))
"""

from __future__ import annotations


def demo_trainer_args(device: str, seed: int) -> dict:
    """Keyword arguments for any trl config (SFTConfig, RewardConfig, RLOOConfig, DPOConfig…)."""
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
    }
