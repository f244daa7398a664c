"""DPO speed: the page's default run, the 5-β sweep, and trl's DPO step against a plain torch loop.

The plain loop computes the same loss (−log σ(β·margin), log-probs summed over answer tokens) on the very
batches trl's own data loader yields, with the same AdamW settings, so the ratio is trl's overhead alone.

    python -m bench.bench_dpo            # prints the table (a few minutes on 2 cores)
    python -m bench.bench_dpo --quick    # shorter sweep and step comparison, for a smoke check
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import argparse  # noqa: E402
import copy  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.report import Row, print_table  # noqa: E402
from llmlab import dpo, dpo_experiments, preferences  # noqa: E402
from llmlab.jobs import Job  # noqa: E402
from llmlab.modeling import bundled_models, load_model, trainable_copy  # noqa: E402

START = "tiny-sft" if "tiny-sft" in bundled_models() else "tiny-base"


def _answer_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ log π over the answer tokens of each row of a trl preference batch: (2B,) = [chosen; rejected]."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (2B, T, V)
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logps = logps.gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)  # (2B, T-1)
    return (token_logps * batch["completion_mask"][:, 1:]).sum(dim=1)


def plain_dpo_steps(start, batches: list[dict], settings: dpo.DPOSettings) -> tuple[float, float]:
    """The same DPO update as trl's, written out in torch; (wall, CPU) seconds for all steps. Like trl with
    `precompute_ref_log_probs` (dpo.dpo_config), it reads the reference log-probs from the batch when they are
    there, computed before the timed loop."""
    policy = trainable_copy(start)
    reference = copy.deepcopy(start.model)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        if "ref_chosen_logps" in batch:
            ref_chosen, ref_rejected = batch["ref_chosen_logps"], batch["ref_rejected_logps"]
        else:
            with torch.no_grad():
                ref_chosen, ref_rejected = _answer_logps(reference, batch).chunk(2)
        chosen, rejected = _answer_logps(policy, batch).chunk(2)
        margin = (chosen - ref_chosen) - (rejected - ref_rejected)
        loss = -F.logsigmoid(settings.beta * margin).mean()
        if settings.chosen_nll:  # trl's "sft" term: the chosen answers' NLL per token
            chosen_tokens = batch["completion_mask"][: len(chosen), 1:].sum()
            loss = loss - settings.chosen_nll * chosen.sum() / chosen_tokens
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)  # trl/transformers default max_grad_norm
        optimizer.step()
    return time.perf_counter() - wall, time.process_time() - cpu


def trl_dpo_steps(start, train, settings: dpo.DPOSettings) -> tuple[float, float, list[dict]]:
    """trl's DPOTrainer for `settings.steps` steps: (wall, CPU) seconds of train(), and the batches it saw."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOTrainer

    with tempfile.TemporaryDirectory() as out:
        trainer = DPOTrainer(
            model=trainable_copy(start),
            ref_model=copy.deepcopy(start.model),
            args=dpo.dpo_config(settings, out, start.device),
            train_dataset=Dataset.from_list(train),
            processing_class=start.tokenizer,
        )
        trainer.remove_callback(PrinterCallback)
        # The sampler is seeded (data_seed), so a fresh loader yields the batches train() will see, in order.
        batches = []
        for batch in trainer.get_train_dataloader():
            batches.append(dict(batch))
            if len(batches) == settings.steps:
                break
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train()
        return time.perf_counter() - wall, time.process_time() - cpu, batches


def trl_step_comparison(start, train, steps: int, repeats: int = 2) -> tuple[float, float, float, float]:
    """Best-of-`repeats` (trl wall, plain wall, trl CPU, plain CPU) for `steps` DPO steps on identical batches,
    alternating the two so a burst of load on the shared machine hits both."""
    settings = dpo.DPOSettings(steps=steps)
    trl_wall, plain_wall, trl_cpu, plain_cpu = [], [], [], []
    for _ in range(repeats):
        wall, cpu, batches = trl_dpo_steps(start, train, settings)
        trl_wall.append(wall)
        trl_cpu.append(cpu)
        wall, cpu = plain_dpo_steps(start, batches, settings)
        plain_wall.append(wall)
        plain_cpu.append(cpu)
    return min(trl_wall), min(plain_wall), min(trl_cpu), min(plain_cpu)


def run(quick: bool = False) -> list[Row]:
    start = load_model(START, "cpu")
    train = preferences.preference_pairs(seed=0, split="train")
    heldout = preferences.preference_pairs(seed=0, split="test")
    rows = []

    default = dpo.DPOSettings()
    cpu = time.process_time()
    job = Job("bench-dpo", dpo_experiments.dpo_work(start, train, heldout, default, preferences.true_reward))
    job.start().join()
    assert job.status == "done", job.error
    outcome, cpu = job.result, time.process_time() - cpu
    rows.append(
        Row(
            f"default live run ({default.steps} steps, β {default.beta:g}): training",
            "",
            f"{outcome.run.train_s:.1f} s",
        )
    )
    rows.append(
        Row(
            "default live run: whole job (training + evaluation)",
            "<= 20 s",
            f"{outcome.wall_s:.1f} s wall, {cpu:.1f} s CPU",
            ok=outcome.wall_s <= 20,
        )
    )

    sweep_steps = 50 if quick else 150
    cpu = time.process_time()
    sweep = Job(
        "bench-sweep",
        dpo_experiments.sweep_work(
            start,
            train,
            heldout,
            dpo.DPOSettings(steps=sweep_steps, batch_size=dpo_experiments.SWEEP_BATCH_SIZE),
            reward_fn=preferences.true_reward,
        ),
    )
    sweep.start().join()
    assert sweep.status == "done", sweep.error
    cpu = time.process_time() - cpu
    rows.append(
        Row(
            f"β sweep, 5 β × {sweep_steps} steps of {dpo_experiments.SWEEP_BATCH_SIZE} pairs (training + evaluation)",
            "<= 90 s",
            f"{sweep.elapsed_s:.1f} s wall, {cpu:.1f} s CPU",
            ok=sweep.elapsed_s <= 90 if not quick else None,
        )
    )
    for point in sweep.result:
        rows.append(
            Row(
                f"  β = {point.beta:g}: held-out accuracy, KL, right answers",
                "",
                f"{point.heldout_accuracy:.0%}, {point.kl:.2f} nats, {point.reward:.0%} (start {point.reference_reward:.0%})",
            )
        )

    steps = 20 if quick else 50
    trl_wall, plain_wall, trl_cpu, plain_cpu = trl_step_comparison(start, train, steps)
    rows.append(
        Row(
            f"trl DPO step vs plain torch, same {steps} batches (wall, best of 2)",
            "<= 1.5x",
            f"{1000 * trl_wall / steps:.0f} ms vs {1000 * plain_wall / steps:.0f} ms per step",
            f"{trl_wall / plain_wall:.2f}x plain torch",
            ok=trl_wall / plain_wall <= 1.5,
        )
    )
    rows.append(
        Row(
            "  the same, CPU time",
            "",
            f"{1000 * trl_cpu / steps:.0f} ms vs {1000 * plain_cpu / steps:.0f} ms per step",
            f"{trl_cpu / plain_cpu:.2f}x plain torch",
        )
    )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    print_table(run(quick=parser.parse_args().quick), f"DPO benchmarks ({START}, {torch.get_num_threads()} threads)")
