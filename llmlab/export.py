"""Take a run home: a trained model as a Hugging Face folder in a zip, with a model card and a script that
reproduces it.

    data = export_zip("sft", model, tokenizer, SFTRunConfig(max_steps=60), "tiny-base", {"steps": 60})
    # llmlab-sft-tiny-base-1a2b3c4d/  config.json  model.safetensors  tokenizer.json ...  MODEL_CARD.md
    #                                 reproduce.py  llmlab_run.json

The folder loads with `AutoModelForCausalLM.from_pretrained(folder)` (`AutoModelForSequenceClassification` for a
reward model; a LoRA run is an adapter folder for `peft.PeftModel.from_pretrained(base, folder)`), never with
remote code. `reproduce.py`, run from the repository's root, rebuilds the run's settings dataclass field by
field, calls the llmlab training function the app called, and saves what it trains with `save_pretrained`.

The model passed in may be a live in-app model shared with other sessions: it is only read. Its config is
copied before saving (transformers' `save_pretrained` writes `architectures` and `dtype` into the config it
saves), and a LoRA adapter is written from its state dict and a copy of its peft config (peft's own
`save_pretrained` flips `inference_mode` on the live config while it saves).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import math
import numbers
import re
import tempfile
import textwrap
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmlab.modeling import bundled_models

KINDS = ("pretraining", "sft", "lora", "reward", "rl", "dpo")
CARD = "MODEL_CARD.md"
SCRIPT = "reproduce.py"
RUN_JSON = "llmlab_run.json"
STEPS = "steps"  # the metrics key for the optimizer steps a run actually did (fewer than set: it was stopped)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one kind of run is described, loaded and reproduced."""

    title: str  # "supervised fine-tuning (trl's SFTTrainer)"
    config_class: str  # the settings dataclass the app builds, e.g. "SFTRunConfig"
    steps_field: str  # its field that sets the number of optimizer steps
    auto_class: str  # what loads the folder
    made_by: str  # where in the app, and which llmlab function
    trainer_lag: int  # 1: a trl Trainer reads a stop request at the end of the next step; 0: the pretrain loop
    imports: str  # the reproduce script's imports for `train`
    train: str  # the body of the reproduce script's `train(config, device)`


_SFT_IMPORTS = (
    "from llmlab.instructions import polished_pairs\nfrom llmlab.jobs import JobCallback\n"
    "from llmlab.modeling import load_model, trainable_copy\nfrom llmlab.sft import SFTRunConfig, run_sft"
)
_SFT_TRAIN = """    loaded = load_model(START_MODEL, device)
    pairs = polished_pairs(seed=config.seed)[: config.samples]
    run, model = run_sft(trainable_copy(loaded), loaded.tokenizer, pairs, config, callbacks=[JobCallback(make_job())])
    print(f"held-out accuracy {run.before.accuracy:.0%} -> {run.after.accuracy:.0%} after {run.steps} steps")
    return model, loaded.tokenizer"""  # the SFT and LoRA recipes' shared body, after each one's docstring


def _rl_train(run: str) -> str:
    """The online-RL recipes' shared body (after each one's docstring): `run` is run_rl (trl) or run_ppo."""
    return f"""    sft = load_model(START_MODEL, device)
    reward_config = reward_settings()
    reward = load_or_train_reward_model(sft, reward_config) if reward_config is not None else None
    run = {run}(sft, reward, config, job=make_job())
    return run.policy, sft.tokenizer"""


RECIPES: dict[str, Recipe] = {
    "pretraining": Recipe(
        title="pre-training from random weights (next-token prediction on the generated corpus)",
        config_class="PretrainConfig",
        steps_field="steps",
        auto_class="AutoModelForCausalLM",
        made_by="the Pre-training page's live run, `llmlab.pretrain.live_pretraining`",
        trainer_lag=0,
        imports="from llmlab.modeling import load_model\nfrom llmlab.pretrain import PretrainConfig, live_pretraining",
        train='''    """A fresh tiny GPT-2 (random weights, the run's seed) pre-trained with the start model's tokenizer, by the
    live run's own worker (it also probes the next-token distribution as it goes, which changes nothing)."""
    tokenizer = load_model(START_MODEL, device).tokenizer
    model = live_pretraining(make_job(), tokenizer, config)
    return model, tokenizer''',
    ),
    "sft": Recipe(
        title="supervised fine-tuning (trl's SFTTrainer), every weight trained",
        config_class="SFTRunConfig",
        steps_field="max_steps",
        auto_class="AutoModelForCausalLM",
        made_by="the SFT page, `llmlab.sft.run_sft` on the first `samples` polished pairs",
        trainer_lag=1,
        imports=_SFT_IMPORTS,
        train='''    """SFT of a copy of the start model on the first `samples` polished pairs, as llmlab.sft.live_sft_work."""
'''
        + _SFT_TRAIN,
    ),
    "lora": Recipe(
        title="supervised fine-tuning with LoRA adapters (trl's SFTTrainer + peft); the base weights stay as they were",
        config_class="SFTRunConfig",
        steps_field="max_steps",
        auto_class="PeftModel",
        made_by="the SFT page's LoRA vs full fine-tuning, `llmlab.sft.run_sft` with `lora_rank` > 0",
        trainer_lag=1,
        imports=_SFT_IMPORTS,
        train='''    """LoRA SFT of the start model on the first `samples` polished pairs, as llmlab.sft.lora_work. The model
    returned is peft's: its save_pretrained writes the adapter folder only."""
'''
        + _SFT_TRAIN,
    ),
    "reward": Recipe(
        title="a reward model (trl's RewardTrainer, Bradley-Terry loss on preference pairs)",
        config_class="RewardRunConfig",
        steps_field="max_steps",
        auto_class="AutoModelForSequenceClassification",
        made_by="the RLHF page's reward-model tab, `llmlab.reward.train_reward_model`",
        trainer_lag=1,
        imports="from llmlab.modeling import load_model\nfrom llmlab.reward import RewardRunConfig, train_reward_model",
        train='''    """A copy of the start model with a one-number score head, trained on the shipped preference pairs."""
    loaded = load_model(START_MODEL, device)
    run = train_reward_model(loaded, config, job=make_job())
    print(f"held-out accuracy {run.heldout.accuracy:.0%}")
    return run.model, run.tokenizer''',
    ),
    "rl": Recipe(
        title="online RL (trl's RLOOTrainer or GRPOTrainer) against a reward, with a KL penalty to the start model",
        config_class="RLRunConfig",
        steps_field="max_steps",
        auto_class="AutoModelForCausalLM",
        made_by="the RLHF page's online-RL tab, `llmlab.rlhf.run_rl`",
        trainer_lag=1,
        imports=(
            "from llmlab.modeling import load_model\n"
            "from llmlab.reward import RewardRunConfig, load_or_train_reward_model\n"
            "from llmlab.rlhf import RLRunConfig, run_rl"
        ),
        train='''    """RL of a copy of the start model. The reward model (unless the reward is correctness) is the one the app
    used: the bundled one for these settings, or the one in the disk cache, else trained once with them."""
'''
        + _rl_train("run_rl"),
    ),
    "dpo": Recipe(
        title="DPO (trl's DPOTrainer) on preference pairs, a frozen copy of the start model as the reference",
        config_class="DPOSettings",
        steps_field="steps",
        auto_class="AutoModelForCausalLM",
        made_by="the DPO page's live run, `llmlab.dpo.train_dpo` (via `llmlab.dpo_experiments.dpo_work`)",
        trainer_lag=1,
        imports=(
            "from llmlab.dpo import DPOSettings, train_dpo\nfrom llmlab.modeling import load_model\n"
            "from llmlab.preferences import preference_pairs"
        ),
        train='''    """DPO of a copy of the start model on the Live DPO tab's pairs (ui/demos/dpo/shared.py: seed 0, unbiased)."""
    start = load_model(START_MODEL, device)
    pairs = preference_pairs(seed=0, biased=False, split="train")
    run = train_dpo(start, pairs, config, job=make_job())
    return run.policy, start.tokenizer''',
    ),
}


# An online-RL run with the project's own PPO (the RLHF page's default algorithm) is the kind "rl" too: its settings
# are a PPOConfig instead of an RLRunConfig.
RL_PPO = Recipe(
    title="online RL with PPO (llmlab/ppo.py: a value head, GAE, the clipped objective) against a reward, with a KL "
    "penalty to the start model",
    config_class="PPOConfig",
    steps_field="max_steps",
    auto_class="AutoModelForCausalLM",
    made_by="the RLHF page's online-RL tab, `llmlab.ppo.run_ppo` (the policy; its value head stays behind)",
    trainer_lag=0,
    imports=(
        "from llmlab.modeling import load_model\n"
        "from llmlab.ppo import PPOConfig, run_ppo\n"
        "from llmlab.reward import RewardRunConfig, load_or_train_reward_model"
    ),
    train='''    """PPO of a copy of the start model. The reward model (unless the reward is correctness) is the one the app
    used: the bundled one for these settings, or the one in the disk cache, else trained once with them."""
'''
    + _rl_train("run_ppo"),
)


class ExportError(ValueError):
    """A run that cannot be exported as asked (unknown kind, settings of the wrong type); the message says why."""


# -- names and settings ------------------------------------------------------------------------------------


def _recipe(kind: str, config: Any, reward_config: Any = None) -> Recipe:
    """The recipe for this kind and settings type; raises ExportError for what cannot be exported."""
    recipe = _pick(kind, config)
    if kind == "rl" and getattr(config, "reward", None) == "reward model" and reward_config is None:
        raise ExportError("An RL run against a reward model needs that model's RewardRunConfig (reward_config=).")
    return recipe


def _pick(kind: str, config: Any) -> Recipe:
    if kind not in RECIPES:
        raise ExportError(f"kind must be one of {', '.join(KINDS)} (got {kind!r}).")
    recipe = RECIPES[kind]
    if kind == "rl" and type(config).__name__ == RL_PPO.config_class:
        recipe = RL_PPO
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ExportError(f"The settings of a {kind} run are a {recipe.config_class} instance (got {config!r}).")
    if type(config).__name__ != recipe.config_class:
        raise ExportError(f"A {kind} run's settings are a {recipe.config_class}, not a {type(config).__name__}.")
    lora_rank = getattr(config, "lora_rank", 0)
    if kind == "lora" and lora_rank <= 0:
        raise ExportError("A LoRA run has lora_rank > 0; with lora_rank = 0 it is the kind 'sft'.")
    if kind == "sft" and lora_rank > 0:
        raise ExportError("An SFT run with lora_rank > 0 trains LoRA adapters: export it as the kind 'lora'.")
    return recipe


def settings(config: Any) -> dict[str, Any]:
    """The settings as {field: value} (`dataclasses.asdict`), in field order."""
    return dataclasses.asdict(config)


def steps_done(kind: str, config: Any, metrics: Mapping[str, Any] | None) -> int | None:
    """The steps a stopped run did (`metrics["steps"]` below the configured steps); None for a run that ended."""
    configured = getattr(config, _pick(kind, config).steps_field)
    done = (metrics or {}).get(STEPS)
    if isinstance(done, numbers.Real) and math.isfinite(done) and 0 <= int(done) < configured:
        return int(done)
    return None


def _slug(text: str) -> str:
    """A start model's name as a file-name part: "HuggingFaceTB/SmolLM2-135M" -> "SmolLM2-135M"."""
    last = re.split(r"[\\/]", str(text).rstrip("/\\"))[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", last).strip("-.") or "model"


def export_name(
    kind: str, config: Any, start_model: str, metrics: Mapping[str, Any] | None = None, *, reward_config: Any = None
) -> str:
    """The folder's (and the zip's) name: llmlab-<kind>-<start model>-<hash of the settings>, e.g.
    "llmlab-sft-tiny-base-1a2b3c4d". Runs with the same settings get the same name."""
    _recipe(kind, config, reward_config)
    described = {
        "kind": kind,
        "start": start_model,
        "settings": settings(config),
        "reward": settings(reward_config) if reward_config is not None else None,
        "stopped_after": steps_done(kind, config, metrics),
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=repr).encode()).hexdigest()[:8]
    return f"llmlab-{kind}-{_slug(start_model)}-{digest}"


def _literal(value: Any) -> str:
    """A settings value as Python source that evaluates back to it (repr, except for non-finite floats)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a Python literal too, in double quotes
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def _merged_imports(*blocks: str) -> list[str]:
    """`from module import a, b` lines, one per module, sorted (the reproduce script's imports)."""
    names: dict[str, set[str]] = {}
    for line in "\n".join(blocks).splitlines():
        module, _, imported = line.removeprefix("from ").partition(" import ")
        names.setdefault(module, set()).update(n.strip() for n in imported.split(","))
    return [f"from {module} import {', '.join(sorted(names[module]))}" for module in sorted(names)]


def _constructor(config: Any, indent: str = "    ") -> str:
    """`ConfigClass(field=value, ...)` with every field, one per line."""
    lines = [f"{type(config).__name__}("]
    for f in dataclasses.fields(config):
        if f.init:
            lines.append(f"{indent}    {f.name}={_literal(getattr(config, f.name))},")
    lines.append(f"{indent})")
    return "\n".join(lines)


def _start_description(start_model: str) -> str:
    if start_model in bundled_models():
        return f"`{start_model}`, bundled with LLM Training Lab (models/{start_model})"
    return (
        f"`{start_model}` (not one of the bundled models: a folder or Hugging Face id on the machine that trained it)"
    )


def base_reference(start_model: str) -> str:
    """What an adapter's `base_model_name_or_path` names: the bundled folder relative to the repository root."""
    return f"models/{start_model}" if start_model in bundled_models() else start_model


# -- the reproduce script ------------------------------------------------------------------------------------


def reproduce_script(
    kind: str,
    config: Any,
    start_model: str,
    metrics: Mapping[str, Any] | None = None,
    *,
    reward_config: Any = None,
) -> str:
    """A Python script that trains the run again from the bundled models with the same settings and saves the
    result: `python reproduce.py --out my-model`, from the repository's root (it imports `llmlab`). A run that
    was stopped (`metrics["steps"]` below the configured steps) is stopped at the same step."""
    recipe = _recipe(kind, config, reward_config)
    name = export_name(kind, config, start_model, metrics, reward_config=reward_config)
    stop_after = steps_done(kind, config, metrics)
    configured = getattr(config, recipe.steps_field)
    imports = "\n".join(
        f"{line}  # noqa: E402" for line in _merged_imports(recipe.imports, "from llmlab.jobs import Job")
    )
    lag_note = (
        "a trl Trainer reads a stop request at the end of a step: asked once step N-1 is logged, it stops after N"
        if recipe.trainer_lag
        else "the loop reads a stop request before each step: asked once step N is logged, it stops after N"
    )
    if stop_after is None:
        job = '''

def make_job() -> Job:
    """A job that is never started: it only collects the run's metrics, as the app's background job did."""
    return Job("reproduce", lambda job: None)
'''
    else:
        job = f'''

# The app's run was stopped after {stop_after} of its {configured} steps: this one stops at the same step (the learning-rate
# schedule still spans all {configured}).
STOP_AFTER = {stop_after}
LAG = {recipe.trainer_lag}  # {lag_note}


class StopAfter(Job):
    """A job that asks the run to stop once STOP_AFTER steps are done, as the app's Stop button did."""

    def __init__(self) -> None:
        super().__init__("reproduce", lambda job: None)
        if STOP_AFTER - LAG <= 0:
            self.stop()

    def log(self, **values: float) -> None:
        super().log(**values)
        if values.get("step", 0) >= STOP_AFTER - LAG:
            self.stop()


def make_job() -> Job:
    return StopAfter()
'''
    reward_part = ""
    if kind == "rl":
        reward_body = "    return None  # the reward is correctness: no reward model"
        if reward_config is not None:
            reward_body = f"    return {_constructor(reward_config)}"
        reward_part = f'''

def reward_settings() -> RewardRunConfig | None:
    """The settings of the reward model the run maximised (None: no reward model)."""
{reward_body}
'''
    auto = {
        "PeftModel": "an adapter folder: PeftModel.from_pretrained(base, folder)",
        "AutoModelForSequenceClassification": "AutoModelForSequenceClassification.from_pretrained(folder)",
        "AutoModelForCausalLM": "AutoModelForCausalLM.from_pretrained(folder)",
    }[recipe.auto_class]
    function = re.findall(r"`(llmlab\.[\w.]+)`", recipe.made_by)[0]
    about = textwrap.fill(
        f"Reproduce {name}, made in LLM Training Lab from {start_model}: {recipe.title}.", 110, break_on_hyphens=False
    )
    how = textwrap.fill(
        "It rebuilds the run's settings (`settings()` below, every field as the app had it), calls the training "
        f"function the app called, `{function}`, and saves the result with save_pretrained: {auto}. "
        "Deterministic for a given seed, machine and thread count.",
        110,
        break_on_hyphens=False,
    )
    return f'''"""{about}

Run it from the root of the LLM Training Lab repository (it imports the repository's `llmlab` package and
loads its bundled models; nothing is downloaded):

    python {name}/{SCRIPT} --out my-model

{how}
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.environ.get("LLMLAB_REPO", os.getcwd()))  # the repository's llmlab package

from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # the app's thread settings, before torch loads

{imports}

START_MODEL = {_literal(start_model)}


def settings() -> {recipe.config_class}:
    """The run's settings, field by field."""
    return {_constructor(config)}
{reward_part}{job}

def train(config: {recipe.config_class}, device: str = "cpu"):
{recipe.train}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Reproduce {name}.")
    parser.add_argument("--out", required=True, help="the folder to save the trained model to")
    parser.add_argument("--device", default="cpu", help="cpu (as in the app), cuda or mps")
    args = parser.parse_args(argv)
    model, tokenizer = train(settings(), args.device)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(f"Saved to {{args.out}}")


if __name__ == "__main__":
    main()
'''


# -- the model card ------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _cell(value)


def _parameters(model: Any) -> tuple[int, int]:
    """(all parameters, trainable by the run: the adapters of a LoRA model, else all)."""
    total = sum(p.numel() for p in model.parameters())
    if hasattr(model, "peft_config"):
        return total, sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    return total, total


def model_card(
    kind: str,
    model: Any,
    config: Any,
    start_model: str,
    metrics: Mapping[str, Any] | None = None,
    *,
    reward_config: Any = None,
    date: str | None = None,
) -> str:
    """MODEL_CARD.md: how the model was made (start model, settings, steps, final metrics, date) and how to load
    and reproduce it."""
    recipe = _recipe(kind, config, reward_config)
    name = export_name(kind, config, start_model, metrics, reward_config=reward_config)
    date = date or datetime.now(UTC).date().isoformat()
    configured = getattr(config, recipe.steps_field)
    stopped = steps_done(kind, config, metrics)
    steps = f"{configured} (the whole run)" if stopped is None else f"{stopped} of {configured} (stopped by hand)"
    if (metrics or {}).get(STEPS) is None:
        steps = f"{configured} (as set; the steps actually run were not recorded)"
    total, trained = _parameters(model)
    architecture = type(model.get_base_model() if kind == "lora" else model).__name__
    start_role = (
        "its tokenizer and shape; the weights start random" if kind == "pretraining" else "the weights it started from"
    )
    lines = [
        f"# {name}",
        "",
        f"Made in LLM Training Lab on {date}: {recipe.title}.",
        "",
        "| | |",
        "|---|---|",
        f"| made by | LLM Training Lab: {recipe.made_by} |",
        f"| start model | {_start_description(start_model)}: {start_role} |",
        f"| architecture | `{architecture}`, {total:,} parameters"
        + (f" ({trained:,} of them in the LoRA adapters this folder holds)" if kind == "lora" else "")
        + " |",
        f"| optimizer steps | {steps} |",
        f"| date | {date} (UTC) |",
        "",
        f"## Settings (`{type(config).__module__}.{type(config).__name__}`)",
        "",
        "| setting | value | what it does |",
        "|---|---|---|",
    ]
    for f in dataclasses.fields(config):
        lines.append(f"| `{f.name}` | `{_cell(repr(getattr(config, f.name)))}` | {_cell(f.metadata.get('help', ''))} |")
    lines += ["", "```python", repr(config), "```"]
    if kind == "rl":
        lines += ["", "## Reward", ""]
        if reward_config is None:
            lines.append("Verifiable correctness (`llmlab.preferences.true_reward`): no reward model.")
        else:
            lines += [
                f"A reward model trained from `{start_model}` with these settings (the bundled one where the "
                "repository ships it, else trained once and cached):",
                "",
                "```python",
                repr(reward_config),
                "```",
            ]
    shown = {k: v for k, v in (metrics or {}).items() if k != STEPS}
    if shown:
        lines += ["", "## Final metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_metric(v)} |" for k, v in shown.items()]
    lines += ["", "## Load it", "", "```python", *_load_snippet(kind, name, start_model), "```"]
    lines += [
        "",
        "## Reproduce it",
        "",
        "From the root of the LLM Training Lab repository (it uses the repository's `llmlab` package and bundled "
        "models):",
        "",
        f"    python {name}/{SCRIPT} --out my-model",
        "",
        "It rebuilds the settings above, calls the same llmlab training function the app called and saves the result "
        "with `save_pretrained`. Deterministic for a given seed, machine and thread count."
        + (" It stops at the same step as this run was stopped." if stopped is not None else ""),
        "",
        "No remote code: nothing here needs `trust_remote_code`.",
        "",
    ]
    return "\n".join(lines)


def _load_snippet(kind: str, name: str, start_model: str) -> list[str]:
    if kind == "lora":
        return [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'base = AutoModelForCausalLM.from_pretrained("{base_reference(start_model)}")  # the base it was trained on',
            f'model = PeftModel.from_pretrained(base, "{name}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{name}")',
        ]
    if kind == "reward":
        return [
            "import torch",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            f'model = AutoModelForSequenceClassification.from_pretrained("{name}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{name}")',
            "# A score reads prompt + answer + the end-of-text token, as the reward model was trained:",
            'text = "<|user|>What is the capital of France?<|assistant|>The capital of France is Paris." + tokenizer.eos_token',
            "with torch.no_grad():",
            '    score = model(**tokenizer(text, return_tensors="pt")).logits[0, 0]',
        ]
    return [
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{name}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{name}")',
    ]


# -- saving without touching the live model -------------------------------------------------------------------


def _save_full_model(model: Any, folder: Path) -> None:
    """`save_pretrained` on a shallow clone that shares the live model's weights but owns copies of its configs
    (save_pretrained writes into the config it saves)."""
    clone = copy.copy(model)
    clone.config = copy.deepcopy(model.config)
    if getattr(model, "generation_config", None) is not None:
        clone.generation_config = copy.deepcopy(model.generation_config)
    clone.save_pretrained(folder, safe_serialization=True)


def _save_adapter(model: Any, folder: Path, start_model: str) -> None:
    """A peft model's active adapter as peft saves it (adapter_config.json, adapter_model.safetensors), from its
    state dict and a copy of its config: peft's own save_pretrained changes the live config while it saves."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    adapter = model.active_adapter
    config = copy.deepcopy(model.peft_config[adapter])
    config.inference_mode = True
    config.base_model_name_or_path = base_reference(start_model)
    # save_embedding_layers=False: "auto" would look the base model up on the Hub to see if its vocabulary grew.
    state = get_peft_model_state_dict(model, adapter_name=adapter, save_embedding_layers=False)
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(str(folder))


def _no_remote_code(folder: Path) -> None:
    """Drop `auto_map` / `custom_pipelines` from every saved JSON config: the folder must load without
    `trust_remote_code`."""
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and ({"auto_map", "custom_pipelines"} & data.keys()):
            data.pop("auto_map", None)
            data.pop("custom_pipelines", None)
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_folder(
    kind: str,
    model: Any,
    tokenizer: Any,
    config: Any,
    start_model: str,
    folder: Path,
    metrics: Mapping[str, Any] | None = None,
    *,
    reward_config: Any = None,
    date: str | None = None,
) -> Path:
    """Write the Hugging Face folder (weights, config, tokenizer, MODEL_CARD.md, reproduce.py, llmlab_run.json)."""
    _recipe(kind, config, reward_config)
    folder = Path(folder)
    if kind == "lora":
        if not hasattr(model, "peft_config"):
            raise ExportError("A LoRA run's model is the peft model run_sft returned (it has the adapters).")
        _save_adapter(model, folder, start_model)
    else:
        if hasattr(model, "peft_config"):
            raise ExportError("This model holds LoRA adapters: export it as the kind 'lora'.")
        _save_full_model(model, folder)
    tokenizer.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)  # peft's empty template card, if any: MODEL_CARD.md is the card
    _no_remote_code(folder)
    date = date or datetime.now(UTC).date().isoformat()
    card = model_card(kind, model, config, start_model, metrics, reward_config=reward_config, date=date)
    (folder / CARD).write_text(card, encoding="utf-8")
    script = reproduce_script(kind, config, start_model, metrics, reward_config=reward_config)
    (folder / SCRIPT).write_text(script, encoding="utf-8")
    run = {
        "made_in": "LLM Training Lab",
        "kind": kind,
        "start_model": start_model,
        "settings_class": f"{type(config).__module__}.{type(config).__name__}",
        "settings": settings(config),
        "reward_settings": settings(reward_config) if reward_config is not None else None,
        "metrics": dict(metrics or {}),
        "date": date,
    }
    (folder / RUN_JSON).write_text(json.dumps(run, indent=2, default=repr) + "\n", encoding="utf-8")
    return folder


def export_zip(
    kind: str,
    model: Any,
    tokenizer: Any,
    config: Any,
    start_model: str,
    metrics: Mapping[str, Any] | None = None,
    *,
    reward_config: Any = None,
    date: str | None = None,
) -> bytes:
    """The run as a zip holding one folder, `export_name(...)`/, that `from_pretrained` loads (see the module
    docstring). Built in a temporary directory outside the repository; the model is only read.

    kind: one of KINDS. config: the run's settings dataclass (PretrainConfig, SFTRunConfig, RewardRunConfig,
    RLRunConfig, DPOSettings). start_model: the name of the model the run started from ("tiny-base", "tiny-sft"),
    or whose tokenizer it used (pre-training). metrics: final numbers for the card, e.g. {"steps": 60,
    "held-out accuracy": 0.7}; "steps" is the steps actually run. reward_config: an RL run's reward model's
    RewardRunConfig (None when its reward is correctness)."""
    name = export_name(kind, config, start_model, metrics, reward_config=reward_config)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="llmlab-export-") as tmp:
        folder = save_folder(
            kind, model, tokenizer, config, start_model, Path(tmp) / name, metrics, reward_config=reward_config,
            date=date,
        )  # fmt: skip
        with zipfile.ZipFile(buffer, "w") as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    # Weights barely compress (float noise) and cost CPU to try: stored; text is deflated.
                    method = zipfile.ZIP_STORED if path.suffix == ".safetensors" else zipfile.ZIP_DEFLATED
                    archive.write(path, f"{name}/{path.relative_to(folder).as_posix()}", compress_type=method)
    return buffer.getvalue()
