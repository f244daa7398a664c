"""Take a run home (llmlab/export.py, ui/download.py): every kind of live run exports a Hugging Face folder in a
zip that loads with the right Auto class (LoRA: a peft adapter on the bundled base) and gives the in-app model's
logits or scores; its card names the start model and the settings; its reproduce.py rebuilds the same settings
and, run from the repo root, trains the same model."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from llmlab import export
from tests.conftest import locked

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "<|user|>What is the capital of France?<|assistant|>"


@pytest.fixture(scope="module")
def tiny_sft():
    from llmlab.modeling import load_model

    return load_model("tiny-sft", "cpu")


def unzip(data: bytes, tmp_path: Path) -> Path:
    """Extract the zip; returns its one top folder (named like the zip)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        assert len(tops) == 1, tops
        archive.extractall(tmp_path)
    return tmp_path / tops.pop()


@torch.inference_mode()
def logits(model, tokenizer) -> torch.Tensor:
    ids = torch.tensor([tokenizer(QUESTION, add_special_tokens=False)["input_ids"]])
    return model(input_ids=ids).logits.float()


def load_script(folder: Path):
    """The folder's reproduce.py as a module (its settings(), train(), make_job())."""
    spec = importlib.util.spec_from_file_location(f"reproduce_{folder.name.replace('-', '_')}", folder / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_folder(folder: Path, kind: str, config, start_model: str) -> str:
    """What every export holds: weights, config, tokenizer, a card naming the start model and every setting,
    a reproduce.py that compiles and rebuilds the same settings, no remote code. Returns the card."""
    files = {p.name for p in folder.iterdir()}
    weights = "adapter_model.safetensors" if kind == "lora" else "model.safetensors"
    assert {weights, "tokenizer.json", "tokenizer_config.json", "MODEL_CARD.md", "reproduce.py"} <= files, files
    assert ("adapter_config.json" if kind == "lora" else "config.json") in files
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        assert "auto_map" not in data and "custom_pipelines" not in data, path.name
    for path in folder.iterdir():
        if path.suffix in (".json", ".md", ".py"):
            assert str(ROOT) not in path.read_text(), f"{path.name} names the server's folders"
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"`{start_model}`" in card and "Made in LLM Training Lab" in card
    assert repr(config) in card
    for field in dataclasses.fields(config):
        assert f"| `{field.name}` | `{getattr(config, field.name)!r}` |" in card
    script = (folder / "reproduce.py").read_text()
    compile(script, "reproduce.py", "exec")
    assert load_script(folder).settings() == config
    run = json.loads((folder / "llmlab_run.json").read_text())
    assert run["kind"] == kind and run["start_model"] == start_model and run["settings"] == dataclasses.asdict(config)
    return card


def same_config(a: dict, b: dict) -> bool:
    drop = {"transformers_version", "_name_or_path"}
    return {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


# -- one test per kind of run ----------------------------------------------------------------------------------


def test_sft_zip_loads_and_its_reproduce_script_trains_the_same_model(tiny_base, tmp_path):
    from transformers import AutoModelForCausalLM

    from llmlab.instructions import polished_pairs
    from llmlab.modeling import trainable_copy
    from llmlab.sft import SFTRunConfig, run_sft

    config = SFTRunConfig(samples=8, max_steps=2, batch_size=4)
    run, model = run_sft(trainable_copy(tiny_base), tiny_base.tokenizer, polished_pairs(seed=0)[:8], config)
    metrics = {"steps": run.steps, "held-out accuracy": run.after.accuracy}
    data = export.export_zip("sft", model, tiny_base.tokenizer, config, "tiny-base", metrics)
    folder = unzip(data, tmp_path / "zip")
    assert folder.name == export.export_name("sft", config, "tiny-base", metrics)
    card = check_folder(folder, "sft", config, "tiny-base")
    assert "held-out accuracy" in card and "2 (the whole run)" in card
    loaded = locked(AutoModelForCausalLM.from_pretrained, folder, trust_remote_code=False, local_files_only=True)
    assert torch.allclose(logits(loaded, tiny_base.tokenizer), logits(model, tiny_base.tokenizer), atol=1e-6)

    out = tmp_path / "again"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(folder / "reproduce.py"), "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    again = locked(AutoModelForCausalLM.from_pretrained, out, trust_remote_code=False, local_files_only=True)
    assert same_config(again.config.to_dict(), loaded.config.to_dict())
    if torch.get_num_threads() == 1:  # the same thread count trains the same weights (float sums in one order)
        assert torch.allclose(logits(again, tiny_base.tokenizer), logits(loaded, tiny_base.tokenizer), atol=1e-5)


def test_a_stopped_pretraining_run_exports_and_its_script_stops_at_the_same_step(tiny_base, tmp_path):
    from transformers import AutoModelForCausalLM

    from llmlab.jobs import Job
    from llmlab.pretrain import PretrainConfig, live_pretraining

    class StoppedDuringStep2(Job):  # the Stop button pressed while step 2 trains: the loop reads it before step 3
        def log(self, **values):
            super().log(**values)
            if values.get("step") == 2:
                self.stop()

    config = PretrainConfig(steps=4, batch_size=4, block_size=16)
    job = StoppedDuringStep2("pt", lambda job: None)
    model = live_pretraining(job, tiny_base.tokenizer, config)
    steps = int(job.metrics[-1]["step"])
    assert steps == 2
    metrics = {"steps": steps, "loss": job.metrics[-1]["loss"]}
    folder = unzip(export.export_zip("pretraining", model, tiny_base.tokenizer, config, "tiny-base", metrics), tmp_path)
    card = check_folder(folder, "pretraining", config, "tiny-base")
    assert "2 of 4 (stopped by hand)" in card
    loaded = locked(AutoModelForCausalLM.from_pretrained, folder, trust_remote_code=False, local_files_only=True)
    assert torch.allclose(logits(loaded, tiny_base.tokenizer), logits(model, tiny_base.tokenizer), atol=1e-6)

    script = load_script(folder)
    assert script.STOP_AFTER == 2
    again, _ = script.train(script.settings())
    assert torch.allclose(logits(again, tiny_base.tokenizer), logits(model, tiny_base.tokenizer), atol=1e-5)


def test_lora_exports_an_adapter_for_the_bundled_base(tiny_base, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llmlab.instructions import polished_pairs
    from llmlab.modeling import trainable_copy
    from llmlab.sft import SFTRunConfig, run_sft

    config = SFTRunConfig(samples=8, max_steps=2, batch_size=4, lora_rank=2, learning_rate=1e-2)
    run, model = run_sft(trainable_copy(tiny_base), tiny_base.tokenizer, polished_pairs(seed=0)[:8], config)
    inference_mode = model.peft_config["default"].inference_mode
    data = export.export_zip("lora", model, tiny_base.tokenizer, config, "tiny-base", {"steps": run.steps})
    assert model.peft_config["default"].inference_mode == inference_mode  # the live model's config is untouched
    folder = unzip(data, tmp_path)
    card = check_folder(folder, "lora", config, "tiny-base")
    assert "PeftModel.from_pretrained" in card and "models/tiny-base" in card
    adapter = json.loads((folder / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "models/tiny-base" and adapter["r"] == 2
    base = locked(AutoModelForCausalLM.from_pretrained, ROOT / "models" / "tiny-base", local_files_only=True)
    loaded = locked(PeftModel.from_pretrained, base, folder)
    lora = logits(model, tiny_base.tokenizer)
    assert not torch.allclose(lora, logits(tiny_base.model, tiny_base.tokenizer), atol=1e-4)  # the adapter matters
    assert torch.allclose(logits(loaded, tiny_base.tokenizer), lora, atol=1e-6)


def test_a_stopped_reward_model_exports_scores_alike_and_its_script_stops_at_the_same_step(tiny_sft, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from llmlab.jobs import Job
    from llmlab.reward import RewardRunConfig, score, train_reward_model

    class StoppedDuringStep2(Job):  # the Stop button pressed while step 2 trains: trl reads it at step 2's end
        def log(self, **values):
            super().log(**values)
            if values.get("step") == 1:
                self.stop()

    config = RewardRunConfig(max_steps=3, batch_size=8, eval_every=100)
    job = StoppedDuringStep2("rm", lambda job: None)
    run = train_reward_model(tiny_sft, config, job)
    steps = int(max(m["step"] for m in job.metrics))
    assert steps == 2
    metrics = {"steps": steps, "held-out accuracy": run.heldout.accuracy}
    folder = unzip(export.export_zip("reward", run.model, run.tokenizer, config, "tiny-sft", metrics), tmp_path)
    card = check_folder(folder, "reward", config, "tiny-sft")
    assert "AutoModelForSequenceClassification" in card and "2 of 3 (stopped by hand)" in card
    loaded = locked(
        AutoModelForSequenceClassification.from_pretrained, folder, trust_remote_code=False, local_files_only=True
    )
    prompts = [QUESTION, QUESTION, "<|user|>What is 3 + 4?<|assistant|>"]
    answers = ["The capital of France is Paris.", "The capital of France is Rome.", "3 + 4 = 7."]
    expected = score(run.model, run.tokenizer, prompts, answers)
    assert torch.allclose(score(loaded, run.tokenizer, prompts, answers), expected, atol=1e-5)

    script = load_script(folder)
    again, _ = script.train(script.settings())
    assert torch.allclose(score(again, run.tokenizer, prompts, answers), expected, atol=1e-4)


def test_rl_exports_the_policy_and_its_script_names_the_reward(tiny_sft, tmp_path):
    from transformers import AutoModelForCausalLM

    from llmlab.reward import RewardRunConfig
    from llmlab.rlhf import RLRunConfig, run_rl

    config = RLRunConfig(max_steps=2, prompts_per_step=2, num_generations=2, max_completion_length=8,
                         reward="correctness")  # fmt: skip
    run = run_rl(tiny_sft, None, config)
    folder = unzip(export.export_zip("rl", run.policy, tiny_sft.tokenizer, config, "tiny-sft", {"steps": 2}), tmp_path)
    card = check_folder(folder, "rl", config, "tiny-sft")
    assert "no reward model" in card and load_script(folder).reward_settings() is None
    loaded = locked(AutoModelForCausalLM.from_pretrained, folder, trust_remote_code=False, local_files_only=True)
    assert torch.allclose(logits(loaded, tiny_sft.tokenizer), logits(run.policy, tiny_sft.tokenizer), atol=1e-6)

    # Against a reward model, the script rebuilds that model's settings too (and export refuses to guess them).
    against_rm = dataclasses.replace(config, reward="reward model")
    with pytest.raises(export.ExportError, match="reward_config"):
        export.reproduce_script("rl", against_rm, "tiny-sft")
    rm = RewardRunConfig(biased=True)
    data = export.export_zip("rl", run.policy, tiny_sft.tokenizer, against_rm, "tiny-sft", reward_config=rm)
    folder = unzip(data, tmp_path / "rm")
    assert repr(rm) in (folder / "MODEL_CARD.md").read_text()
    assert load_script(folder).reward_settings() == rm
    assert folder.name != export.export_name("rl", against_rm, "tiny-sft", reward_config=RewardRunConfig())


def test_a_ppo_run_is_an_rl_export_whose_script_calls_run_ppo(tiny_sft, tmp_path):
    from transformers import AutoModelForCausalLM

    from llmlab.ppo import PPOConfig, run_ppo

    config = PPOConfig(max_steps=3, prompts_per_step=2, num_generations=2, max_completion_length=8, ppo_epochs=1,
                       mini_batches=1, reward="correctness")  # fmt: skip
    run = run_ppo(tiny_sft, None, config)
    data = export.export_zip("rl", run.policy, tiny_sft.tokenizer, config, "tiny-sft", {"steps": 3})
    folder = unzip(data, tmp_path)
    card = check_folder(folder, "rl", config, "tiny-sft")
    assert "llmlab.ppo.run_ppo" in card and "run_ppo(sft, reward, config" in (folder / "reproduce.py").read_text()
    loaded = locked(AutoModelForCausalLM.from_pretrained, folder, trust_remote_code=False, local_files_only=True)
    assert torch.allclose(logits(loaded, tiny_sft.tokenizer), logits(run.policy, tiny_sft.tokenizer), atol=1e-6)
    script = load_script(folder)
    again, _ = script.train(script.settings())
    assert torch.allclose(logits(again, tiny_sft.tokenizer), logits(run.policy, tiny_sft.tokenizer), atol=1e-5)


def test_dpo_exports_the_policy(tiny_sft, tmp_path):
    from transformers import AutoModelForCausalLM

    from llmlab.dpo import DPOSettings, train_dpo
    from llmlab.preferences import preference_pairs

    config = DPOSettings(steps=2, batch_size=8, learning_rate=1e-3)
    run = train_dpo(tiny_sft, preference_pairs(split="train")[:16], config)
    data = export.export_zip("dpo", run.policy, tiny_sft.tokenizer, config, "tiny-sft", {"steps": run.steps_done})
    folder = unzip(data, tmp_path)
    check_folder(folder, "dpo", config, "tiny-sft")
    loaded = locked(AutoModelForCausalLM.from_pretrained, folder, trust_remote_code=False, local_files_only=True)
    assert torch.allclose(logits(loaded, tiny_sft.tokenizer), logits(run.policy, tiny_sft.tokenizer), atol=1e-6)


# -- the live model is only read; what cannot be exported says why ------------------------------------------------


def test_export_leaves_the_live_model_as_it_was_and_drops_remote_code(tiny_base, tmp_path):
    from transformers import AutoModelForCausalLM

    from llmlab.modeling import trainable_copy
    from llmlab.sft import SFTRunConfig

    model = trainable_copy(tiny_base)
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight[0, 0] += 0.5  # a "trained" model, nudged
    model.config.auto_map = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    model.config.architectures = ["Sentinel"]
    before_config = model.config.to_dict()
    before_weights = {k: v.clone() for k, v in model.state_dict().items()}
    before_shared = {k: v.clone() for k, v in tiny_base.model.state_dict().items()}

    data = export.export_zip("sft", model, tiny_base.tokenizer, SFTRunConfig(), "tiny-base")
    export.export_zip("sft", tiny_base.model, tiny_base.tokenizer, SFTRunConfig(), "tiny-base")  # the shared one

    assert model.config.to_dict() == before_config and model.training
    assert all(torch.equal(v, before_weights[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(v, before_shared[k]) for k, v in tiny_base.model.state_dict().items())
    assert not any(p.requires_grad for p in tiny_base.model.parameters()) and not tiny_base.model.training
    folder = unzip(data, tmp_path)
    saved = json.loads((folder / "config.json").read_text())
    assert "auto_map" not in saved and saved["architectures"] == ["GPT2LMHeadModel"]
    loaded = locked(AutoModelForCausalLM.from_pretrained, folder, trust_remote_code=False, local_files_only=True)
    assert torch.allclose(logits(loaded, tiny_base.tokenizer), logits(model, tiny_base.tokenizer), atol=1e-6)


def test_what_cannot_be_exported_says_why(tiny_base):
    from llmlab.reward import RewardRunConfig
    from llmlab.sft import SFTRunConfig

    with pytest.raises(export.ExportError, match="kind must be one of"):
        export.export_name("ppo", SFTRunConfig(), "tiny-base")
    with pytest.raises(export.ExportError, match="SFTRunConfig, not a RewardRunConfig"):
        export.export_name("sft", RewardRunConfig(), "tiny-base")
    with pytest.raises(export.ExportError, match="lora_rank > 0"):
        export.export_name("lora", SFTRunConfig(), "tiny-base")
    with pytest.raises(export.ExportError, match="peft model"):
        export.export_zip("lora", tiny_base.model, tiny_base.tokenizer, SFTRunConfig(lora_rank=4), "tiny-base")
    # Names: a hub id or folder becomes a file-name part; other settings, another name.
    name = export.export_name("sft", SFTRunConfig(), "HuggingFaceTB/SmolLM2-135M")
    assert name.startswith("llmlab-sft-SmolLM2-135M-") and len(name.rsplit("-", 1)[1]) == 8
    assert export.export_name("sft", SFTRunConfig(max_steps=61), "tiny-base") != export.export_name(
        "sft", SFTRunConfig(), "tiny-base"
    )


# -- the button ---------------------------------------------------------------------------------------------------


def _page() -> None:  # an AppTest script: a finished run's download button
    from llmlab.modeling import load_model
    from llmlab.sft import SFTRunConfig
    from ui.download import download_button

    loaded = load_model("tiny-base", "cpu")
    download_button(
        "sft", loaded.model, loaded.tokenizer, SFTRunConfig(max_steps=2), "tiny-base", {"steps": 2}, key="t_dl"
    )


def test_the_download_button_names_the_zip_and_builds_it_on_click_once(monkeypatch):
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.testing.v1 import AppTest

    from llmlab.sft import SFTRunConfig
    from ui.download import LABEL

    registered = []
    original = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        registered.append((data_callable, mimetype, file_name))
        return original(self, data_callable, mimetype, coordinates, file_name=file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    at = AppTest.from_function(_page, default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    [button] = at.get("download_button")
    assert button.proto.label == LABEL and button.proto.deferred_file_id  # built on click, not on render
    file_name = export.export_name("sft", SFTRunConfig(max_steps=2), "tiny-base", {"steps": 2}) + ".zip"
    assert file_name in " ".join(c.value for c in at.caption)
    [(build, mimetype, name)] = registered
    assert (name, mimetype) == (file_name, "application/zip")
    data = build()
    assert build() is data  # the second click reuses the bytes
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert f"{file_name.removesuffix('.zip')}/model.safetensors" in archive.namelist()


def test_a_run_notes_what_it_started_from():
    from llmlab.jobs import Job
    from llmlab.sft import SFTRunConfig
    from ui.download import RunStart, note_start, started

    job = Job("sft", lambda job: None)
    assert started(job) is None
    assert note_start(job, "tiny-base", "tok", SFTRunConfig(max_steps=5)) is job
    assert started(job) == RunStart("tiny-base", "tok", SFTRunConfig(max_steps=5))
