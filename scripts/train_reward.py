"""Build the reward models the RLHF page uses by default, and ship them under models/reward-models/.

Trains trl's RewardTrainer on a copy of models/tiny-sft twice with the page's default settings: once on the
honest labels (the right answer wins) and once on the biased labels (the longer, polite-padded answer wins).
Each lands in models/reward-models/<key>/, where <key> hashes the policy's weights, the settings and the
preference data version (`llmlab.reward.reward_model_folder`), so the page finds them on a fresh checkout
instead of training on a visitor's first view. Each folder holds `reward_run.json` (settings, held-out
accuracy). About 10 s per model on 2 CPU cores. Re-run it after changing tiny-sft or the preference data.

    python scripts/train_reward.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import argparse  # noqa: E402
import shutil  # noqa: E402

import torch  # noqa: E402

from llmlab import reward  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="tiny-sft")
    parser.add_argument("--keep-old", action="store_true", help="keep reward models of older policies/settings")
    args = parser.parse_args()
    torch.set_num_threads(2)
    policy = load_model(args.policy, "cpu")
    keep = set()
    for biased in (False, True):
        cfg = reward.RewardRunConfig(biased=biased)
        folder = reward.BUNDLED_REWARD_DIR / reward.reward_model_key(policy, cfg)
        keep.add(folder.name)
        if (folder / "config.json").is_file():
            print(f"{folder.name}: already there (biased={biased})")
            continue
        run = reward.train_reward_model(policy, cfg)
        reward.save_reward_model(run, folder)
        print(
            f"{folder.name}: biased={biased}, held-out {run.heldout.accuracy:.0%} "
            f"(true labels {run.heldout_true.accuracy:.0%}), {run.seconds:.0f} s"
        )
    if not args.keep_old:
        for old in reward.BUNDLED_REWARD_DIR.iterdir():
            if old.name not in keep:
                shutil.rmtree(old)
                print(f"{old.name}: removed (an older policy or settings)")


if __name__ == "__main__":
    main()
