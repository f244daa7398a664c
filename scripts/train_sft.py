"""Build models/tiny-sft from models/tiny-base: supervised fine-tuning with trl's SFTTrainer.

Trains a copy of tiny-base on the polished instruction set (`llmlab/instructions.py`: capital, language
and continent questions about 30 countries, sums, tiny stories, code requests) in the bundled chat format
"<|user|>question<|assistant|>answer<|endoftext|>", with the loss on the answer only. Deterministic given
--seed (same machine, same thread count); about a minute on 2 CPU cores. Writes the model and tokenizer
(`save_pretrained`), `sft_history.json` (loss per step, held-out answers before/after) and `MODEL_CARD.md`.

    python scripts/train_sft.py                       # -> models/tiny-sft
    python scripts/train_sft.py --steps 50 --out /tmp/quick-sft
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from llmlab.instructions import TRAIN_COUNTRIES, fact_pairs, polished_pairs  # noqa: E402
from llmlab.modeling import load_model, trainable_copy  # noqa: E402
from llmlab.sft import SFTRunConfig, greedy_answers, run_sft, score_held_out  # noqa: E402

PROBE = "What is the capital of France?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="tiny-base")
    parser.add_argument("--out", default="models/tiny-sft")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-embeddings", action="store_true", help="also train the token embeddings")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()

    base = load_model(args.base, "cpu")
    pairs = polished_pairs(seed=args.seed)
    cfg = SFTRunConfig(
        samples=len(pairs),
        max_steps=args.steps,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        warmup_steps=20,
        freeze_embeddings=not args.train_embeddings,
        seed=args.seed,
    )
    print(f"SFT of {args.base} on {len(pairs)} pairs: {cfg}", flush=True)
    run, model = run_sft(trainable_copy(base), base.tokenizer, pairs, cfg)
    train_score = score_held_out(model, base.tokenizer, fact_pairs(TRAIN_COUNTRIES, all_phrasings=False))
    probe = greedy_answers(model, base.tokenizer, [PROBE])[0]
    print(f"loss {run.losses[0]:.3f} -> {run.losses[-1]:.3f} in {run.wall_s:.1f} s")
    print(
        f"held-out accuracy {run.before.accuracy:.2f} -> {run.after.accuracy:.2f}; "
        f"format {run.before.format_rate:.2f} -> {run.after.format_rate:.2f}; train-country accuracy "
        f"{train_score.accuracy:.2f}"
    )
    print(f"{PROBE!r} -> {probe.text!r} (ends with <|endoftext|>: {probe.stopped})")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(out)
    base.tokenizer.save_pretrained(out)
    summary = {
        "base": args.base,
        "seed": args.seed,
        "config": cfg.__dict__,
        "pairs": len(pairs),
        "parameters": run.total_params,
        "loss": [round(x, 4) for x in run.losses],
        "train_seconds": round(run.wall_s, 1),
        "held_out": {
            "accuracy_before": run.before.accuracy,
            "accuracy_after": run.after.accuracy,
            "format_before": run.before.format_rate,
            "format_after": run.after.format_rate,
            "before": [a.__dict__ for a in run.before.answers],
            "after": [a.__dict__ for a in run.after.answers],
        },
        "train_country_accuracy": train_score.accuracy,
        "probe": {"question": PROBE, "answer": probe.text, "stopped": probe.stopped},
    }
    (out / "sft_history.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    (out / "MODEL_CARD.md").write_text(model_card(summary, out.name, args))
    print(f"saved {out} in {time.perf_counter() - started:.0f} s")


def model_card(s: dict, name: str, args: argparse.Namespace) -> str:
    c, h = s["config"], s["held_out"]
    return f"""# {name}

`{s["base"]}` after supervised fine-tuning with trl's `SFTTrainer`: a chat model for the LLM Training Lab.

| | |
|---|---|
| architecture | same as {s["base"]}: `GPT2LMHeadModel`, {s["parameters"]:,} parameters, context 128 |
| chat format | `<|user|>question<|assistant|>answer<|endoftext|>` (the tokenizer's chat template; generation stops at `<|endoftext|>`) |
| data | `llmlab/instructions.py` `polished_pairs(seed={s["seed"]})`: {s["pairs"]} pairs: capital / language / continent questions about 30 countries in several phrasings, one answer style each, plus sums, tiny stories and Python requests |
| held out | 10 countries (`HELD_OUT_COUNTRIES`) never appear in the SFT data; their 30 canonical questions measure generalisation |
| training | {c["max_steps"]} steps of AdamW, batch {c["batch_size"]}, lr {c["learning_rate"]} (warm-up {c["warmup_steps"]}, linear decay), loss on the answer tokens only (`completion_only_loss=True`); token embeddings {"frozen" if c["freeze_embeddings"] else "trained"}; seed {c["seed"]} |
| loss | {s["loss"][0]:.3f} → {s["loss"][-1]:.3f} nats per answer token |
| held-out accuracy | {h["accuracy_before"]:.2f} before → {h["accuracy_after"]:.2f} after (answer names the right capital / language / continent) |
| held-out format | {h["format_before"]:.2f} → {h["format_after"]:.2f} (polished sentence, then `<|endoftext|>`) |
| train countries | accuracy {s["train_country_accuracy"]:.2f} on their canonical questions |
| probe | "{s["probe"]["question"]}" → "{s["probe"]["answer"]}" (stops: {s["probe"]["stopped"]}) |
| train time | {s["train_seconds"]} s on the machine that built it |

The facts come from pre-training: SFT taught the format (held-out countries are answered in the new style
with what tiny-base already knew). Freezing the token embeddings matters for that: trained, they push the
held-out country names away and the model answers about a similar training country instead ("What is the
capital of Spain?" -> "The capital of Belgium is Brussels."). It is the starting point of the RLHF and DPO pages.

Rebuild (deterministic for a given seed, machine and thread count):

    python scripts/train_sft.py --base {args.base} --out models/{name} --seed {s["seed"]} --steps {c["max_steps"]} --lr {c["learning_rate"]} --batch-size {c["batch_size"]}{"" if c["freeze_embeddings"] else " --train-embeddings"}
"""


if __name__ == "__main__":
    main()
