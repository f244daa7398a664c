"""Sample the shipped preference pairs from models/tiny-sft into models/tiny-sft/preferences.json.

tiny-sft answers every question 64 times (temperature 1, our own seeded sampler); each distinct wrong answer is
paired with one of its right answers (llmlab/preferences.py says why on-policy pairs). Deterministic: the same
tiny-sft gives the same file. About 20 s on 2 CPU cores. Re-run after changing tiny-sft (scripts/train_sft.py),
then rebuild the bundled reward models (scripts/train_reward.py), which are named by this file's hash.

    python scripts/sample_preferences.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import json  # noqa: E402

import torch  # noqa: E402

from llmlab import preferences  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    policy = load_model("tiny-sft", "cpu")
    splits = preferences.sample_preferences(policy.model, policy.tokenizer)
    about = {
        "how": f"tiny-sft's own answers, {preferences.SAMPLES_PER_QUESTION} per question at temperature 1; each "
        f"distinct wrong answer (up to {preferences.MISTAKES_PER_QUESTION}) against one of its right answers",
        "made_by": "scripts/sample_preferences.py",
        "splits": splits,
    }
    preferences.PREFERENCES_FILE.write_text(json.dumps(about, indent=1, ensure_ascii=False) + "\n")
    for split, rows in splits.items():
        print(f"{split}: {len(rows)} pairs on {len({r['prompt'] for r in rows})} questions")


if __name__ == "__main__":
    main()
