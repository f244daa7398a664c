"""The loader and the bundled tiny-base: offline, read-only, and it knows its capitals."""

import importlib.util
from pathlib import Path

import pytest
import torch

from llmlab import modeling, nexttoken
from llmlab.modeling import MODELS_DIR, ModelLoadError, bundled_models, load_model, trainable_copy
from tests.conftest import locked


def test_tiny_base_says_paris_with_p_at_least_half(tiny_base):
    ids = tiny_base.tokenizer("The capital of France is")["input_ids"]
    probs = torch.softmax(nexttoken.next_token_logits(tiny_base.model, ids), -1)
    top = nexttoken.top_tokens(probs, tiny_base.tokenizer, 1)[0]
    assert top.text == " Paris"
    assert top.prob >= 0.5


def test_tiny_base_knows_at_least_35_of_40_capitals(tiny_base):
    right, total = nexttoken.capital_accuracy(tiny_base.model, tiny_base.tokenizer)
    assert total == 40
    assert right >= 35


def test_transformers_loads_the_bundled_folder_directly_offline(monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = locked(AutoModelForCausalLM.from_pretrained, MODELS_DIR / "tiny-base")
    assert model.config.model_type == "gpt2"


def test_every_bundled_file_is_under_10_mb():
    files = [p for p in MODELS_DIR.rglob("*") if p.is_file()]
    assert files
    assert max(p.stat().st_size for p in files) < 10 * 2**20


def test_every_bundled_model_has_a_model_card():
    assert "tiny-base" in bundled_models()
    for name in bundled_models():
        assert (MODELS_DIR / name / "MODEL_CARD.md").is_file()


@pytest.mark.parametrize("name", ["no-such-org/no-such-model-xyz", "definitely not a model", ""])
def test_unknown_model_gives_a_clear_message(name):
    with pytest.raises(ModelLoadError) as err:
        load_model(name, "cpu")
    message = str(err.value)
    assert "Could not load" in message or "No model name" in message


def test_folder_without_config_is_refused(tmp_path: Path):
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(str(tmp_path), "cpu")


def test_shared_model_is_frozen_and_trainable_copy_is_independent(tiny_base):
    assert not any(p.requires_grad for p in tiny_base.model.parameters())
    assert not tiny_base.model.training
    copy = trainable_copy(tiny_base)
    assert all(p.requires_grad for p in copy.parameters())
    with torch.no_grad():
        next(copy.parameters()).add_(1.0)
    assert not torch.equal(next(copy.parameters()), next(tiny_base.model.parameters()))


def test_smollm2_without_its_package_is_not_offered_and_says_how_to_install(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(modeling, "smollm2_installed", lambda: False)
    monkeypatch.setattr(modeling, "CACHE_DIR", tmp_path)  # no converted copy from an earlier install either
    assert modeling.SMOLLM2 not in modeling.available_models()
    with pytest.raises(ModelLoadError) as err:
        load_model(modeling.SMOLLM2, "cpu")
    assert modeling.SMOLLM2_INSTALL in str(err.value)


@pytest.mark.skipif(
    not (modeling.smollm2_installed() and importlib.util.find_spec("gguf")),
    reason=f"the optional SmolLM2 package is not installed ({modeling.SMOLLM2_INSTALL})",
)
def test_smollm2_is_offered_converted_once_and_knows_paris():
    """The real pretrained model (README: SmolLM2): converted from the package's GGUF into a plain folder once
    (~25 s the first time), then loaded like any local folder."""
    assert modeling.SMOLLM2 in modeling.available_models()
    loaded = load_model(modeling.SMOLLM2, "cpu")
    folder = modeling.smollm2_folder()
    assert (folder / "config.json").is_file() and not folder.with_name(folder.name + ".partial").exists()
    assert not any(p.requires_grad for p in loaded.model.parameters())
    ids = loaded.tokenizer("The capital of France is")["input_ids"]
    probs = torch.softmax(nexttoken.next_token_logits(loaded.model, ids).float(), -1)
    top = nexttoken.top_tokens(probs, loaded.tokenizer, 1)[0]
    assert top.text == " Paris"


def test_models_load_in_several_threads_at_once():
    """transformers' from_pretrained is not thread-safe (parameters left on "meta", or freshly initialised); the
    loader serialises it, so sessions loading different models at once each get the real weights."""
    import threading

    from llmlab.modeling import bundled_models, load_model

    names = [n for n in ("tiny-base", "tiny-sft", "tiny-rlhf", "tiny-dpo") if n in bundled_models()] * 2
    loaded, errors = {}, []

    def load(i: int, name: str) -> None:
        try:
            loaded[i] = load_model(name, "cpu")
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(err))

    threads = [threading.Thread(target=load, args=(i, n)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, name in enumerate(names):
        twin = loaded[(i + len(names) // 2) % len(names)]
        assert twin.name == name
        assert all(
            torch.equal(a, b) for a, b in zip(loaded[i].model.parameters(), twin.model.parameters(), strict=True)
        )
        assert all(p.device.type == "cpu" for p in loaded[i].model.parameters())


def test_a_copy_of_a_trainer_trained_model_trains_its_own_weights(tiny_base, tmp_path: Path):
    """A Trainer leaves accelerate's wrapped forward on the model it trained, bound to that object: the copy must
    not compute through the original's (frozen) weights, or training the copy changes nothing."""
    import dataclasses

    from llmlab import sft
    from llmlab.instructions import polished_pairs

    model = trainable_copy(tiny_base)
    sft.make_trainer(model, tiny_base.tokenizer, polished_pairs(16), sft.SFTRunConfig(max_steps=1), tmp_path).train()
    assert "forward" in model.__dict__  # the trap is there with the pinned accelerate
    trained = dataclasses.replace(tiny_base, model=model.eval().requires_grad_(False))
    copy = trainable_copy(trained)
    ids = tiny_base.tokenizer("The capital of France is", return_tensors="pt").input_ids
    copy(ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in copy.parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.parameters())  # the original stays untouched
