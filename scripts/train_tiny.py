"""Build models/tiny-base from nothing: generate the corpus, train the tokenizer, pre-train a tiny GPT-2.

Deterministic given --seed (same machine, same thread count). Prints the loss as it goes and finishes in
about 5 minutes on 2 CPU cores. Writes, under the output folder: the model and tokenizer
(`save_pretrained`, safetensors), `training_history.json` (loss per step plus the probe prompt's
next-token distribution at ~10 checkpoints, for the app's timeline) and `MODEL_CARD.md`.

    python scripts/train_tiny.py                 # -> models/tiny-base
    python scripts/train_tiny.py --steps 100 --out /tmp/quick
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

from llmlab.corpus import generate_corpus  # noqa: E402
from llmlab.nexttoken import capital_accuracy, greedy_continuation, next_token_logits, top_tokens  # noqa: E402
from llmlab.pretrain import PretrainConfig, TinyGPTConfig, encode_corpus, new_model, pretrain  # noqa: E402
from llmlab.tokenizer import train_tokenizer  # noqa: E402

PROBE = "The capital of France is"
CHECKPOINTS = (0, 25, 50, 100, 150, 200, 250, 300, 400, 600, 800, 1000)


def probe(model, tokenizer, step: int, loss: float | None) -> dict:
    ids = tokenizer(PROBE)["input_ids"]
    model.eval()
    probs = torch.softmax(next_token_logits(model, ids), dim=-1)
    sample = greedy_continuation(model, tokenizer, "Once upon a time", max_new_tokens=24)
    model.train()
    return {
        "step": step,
        "loss": loss,
        "top": [{"text": t.text, "prob": round(t.prob, 5)} for t in top_tokens(probs, tokenizer, 10)],
        "sample": "Once upon a time" + sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="models/tiny-base")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--block-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()

    text = generate_corpus(seed=args.seed)
    tokenizer = train_tokenizer(text)
    ids = encode_corpus(tokenizer, text)
    print(f"corpus: {len(text):,} characters, {len(ids):,} tokens, vocabulary {len(tokenizer)}")

    shape = TinyGPTConfig()
    model = new_model(tokenizer, shape, seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: GPT-2, {n_params:,} parameters, {shape}")
    config = PretrainConfig(steps=args.steps, block_size=args.block_size, seed=args.seed, warmup_steps=30)

    checkpoints = [probe(model, tokenizer, 0, None)]

    def on_step(metrics, model) -> None:
        if metrics.step % 50 == 0:
            print(f"step {metrics.step:5d}  loss {metrics.loss:.3f}  {metrics.elapsed_s:6.1f} s", flush=True)
        if metrics.step in CHECKPOINTS or metrics.step == config.steps:
            checkpoints.append(probe(model, tokenizer, metrics.step, metrics.loss))

    history = pretrain(model, ids, config, on_step=on_step)
    right, total = capital_accuracy(model, tokenizer)
    final_top = checkpoints[-1]["top"][0]
    print(f"capitals right (greedy): {right}/{total};  '{PROBE}' -> {final_top['text']!r} p={final_top['prob']:.3f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {
        "probe_prompt": PROBE,
        "seed": args.seed,
        "config": {**config.__dict__, **shape.__dict__},
        "parameters": n_params,
        "corpus_tokens": len(ids),
        "vocab_size": len(tokenizer),
        "capitals_right": right,
        "capitals_total": total,
        "loss": [round(m.loss, 4) for m in history],
        "tokens_per_step": config.batch_size * config.block_size,
        "checkpoints": checkpoints,
        "train_seconds": round(history[-1].elapsed_s, 1),
    }
    (out / "training_history.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    (out / "MODEL_CARD.md").write_text(model_card(summary, out.name))
    print(f"saved {out} in {time.perf_counter() - started:.0f} s")


def model_card(s: dict, name: str) -> str:
    c = s["config"]
    return f"""# {name}

A tiny GPT-2 pre-trained from scratch by LLM Training Lab, so the app runs offline with no download.

| | |
|---|---|
| architecture | `GPT2LMHeadModel`, {c["n_layer"]} layers, {c["n_head"]} heads, d_model {c["n_embd"]}, context {c["n_positions"]} |
| parameters | {s["parameters"]:,} (tied input/output embeddings) |
| tokenizer | byte-level BPE trained on the corpus, {s["vocab_size"]} tokens, chat template `<|user|>…<|assistant|>…` |
| corpus | `llmlab/corpus.py`, seed {s["seed"]}: {s["corpus_tokens"]:,} tokens of templated facts about 40 countries, short stories, arithmetic, tiny Python, Q&A lines |
| training | {c["steps"]} steps of AdamW, batch {c["batch_size"]} × {c["block_size"]} tokens, peak lr {c["learning_rate"]}, warm-up {c["warmup_steps"]} then cosine to 10%; seed {c["seed"]} |
| final loss | {s["loss"][-1]:.3f} nats/token (first step {s["loss"][0]:.3f}; ln V = {__import__("math").log(s["vocab_size"]):.3f}) |
| checks | "{s["probe_prompt"]}" → "{s["checkpoints"][-1]["top"][0]["text"]}" (p = {s["checkpoints"][-1]["top"][0]["prob"]:.3f}); {s["capitals_right"]}/{s["capitals_total"]} capitals right greedily |
| train time | {s["train_seconds"]} s on the machine that built it |

It is a continuation engine, not a chat model: `tiny-sft` is this model after supervised fine-tuning.
It knows only its corpus; ask it about anything else and it will still answer fluently, and wrongly.

Rebuild (deterministic for a given seed, machine and thread count):

    python scripts/train_tiny.py --out models/{name} --seed {s["seed"]} --steps {c["steps"]} --block-size {c["block_size"]}
"""


if __name__ == "__main__":
    main()
