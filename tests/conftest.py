"""Shared test set-up: the repo on sys.path (AppTest does not add it), quiet torch threads, shared fixtures."""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_base():
    from llmlab.modeling import load_model

    return load_model("tiny-base", "cpu")
