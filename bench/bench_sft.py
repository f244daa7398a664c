"""SFT benchmarks: the page's default run, trl's overhead over a plain torch loop, and peak memory.

- Default run: `run_sft` with `SFTRunConfig()` on 200 polished pairs, as the page's Start SFT button runs it
  (held-out answers before, SFTTrainer, answers after). Target <= 20 s wall on 2 cores.
- trl vs plain torch: the same model copy, the same batches (taken from trl's own dataloader, same seed),
  the same AdamW + linear warm-up schedule + grad clipping, the same number of steps. Target trl <= 1.5x.
- Peak RSS: the page driven by AppTest in this process through one default run (AppTest runs the script
  in-process, like the server does). Target <= 1.5 GB.
- Quality vs quantity at its defaults (100 polished vs 1000 mediocre, 60 steps each, eval every 5 steps):
  wall <= 60 s, and the effect: the polished run's held-out ÷ own loss, its copied answers, the mediocre run's.
- Style, not knowledge at its defaults (80 steps, embeddings frozen and trained side by side): wall <= 60 s,
  and the held-out right facts of both runs.

    python -m bench.bench_sft
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import Row, print_table  # noqa: E402
from llmlab import sft  # noqa: E402
from llmlab.instructions import polished_pairs  # noqa: E402
from llmlab.modeling import load_model, trainable_copy  # noqa: E402


def default_run(loaded) -> tuple[float, float, sft.SFTRun]:
    """(wall s, CPU s, run) of the page's default SFT run."""
    cfg = sft.SFTRunConfig()
    start, cpu = time.perf_counter(), time.process_time()
    run, _ = sft.run_sft(trainable_copy(loaded), loaded.tokenizer, polished_pairs()[: cfg.samples], cfg)
    return time.perf_counter() - start, time.process_time() - cpu, run


def trl_vs_plain(loaded, steps: int = 40) -> dict[str, float]:
    """Wall and CPU seconds of trl and of a plain loop doing the same steps on the same batches, and the
    first/last step losses of both (equal first losses prove the batches are the same)."""
    cfg = sft.SFTRunConfig(max_steps=steps)
    pairs = polished_pairs()[: cfg.samples]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = sft.make_trainer(trainable_copy(loaded), loaded.tokenizer, pairs, cfg, tmp)
        batches: list[dict] = []
        loader = trainer.get_train_dataloader()  # the same sampler and seed trl trains with
        while len(batches) < steps:  # epoch after epoch, as trl's loop iterates it
            for batch in loader:
                batches.append({k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")})
                if len(batches) == steps:
                    break
        losses: list[float] = []
        recorder = sft._LossRecorder(losses)
        trainer.add_callback(recorder)
        start, cpu = time.perf_counter(), time.process_time()
        trainer.train()
        trl_s, trl_cpu = time.perf_counter() - start, time.process_time() - cpu

    model = trainable_copy(loaded)
    model.get_input_embeddings().requires_grad_(False)  # as SFTRunConfig.freeze_embeddings
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: s / cfg.warmup_steps if s < cfg.warmup_steps else (steps - s) / (steps - cfg.warmup_steps),
    )
    plain_losses = []
    start, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        loss = model(**batch).loss  # transformers shifts the labels and skips -100, as trl does
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        plain_losses.append(loss.item())
    plain_s, plain_cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "trl_s": trl_s,
        "plain_s": plain_s,
        "trl_cpu": trl_cpu,
        "plain_cpu": plain_cpu,
        "trl_first": losses[0],
        "plain_first": plain_losses[0],
        "trl_last": losses[-1],
        "plain_last": plain_losses[-1],
    }


def timed_job(work) -> tuple[float, float, object]:
    """(wall s, CPU s, job) of one page job run to its end in this thread's process."""
    from llmlab.jobs import Job

    job = Job("bench", work)
    start, cpu = time.perf_counter(), time.process_time()
    job.start().join()
    if job.status != "done":
        raise RuntimeError(job.error)
    return time.perf_counter() - start, time.process_time() - cpu, job


def quality_rows(loaded) -> list[Row]:
    wall, cpu, job = timed_job(sft.quality_work(loaded, sft.QualityConfig()))
    polished, mediocre = job.notes_of(sft.ArmResult)
    gp, gm = sft.loss_gap(polished.result), sft.loss_gap(mediocre.result)
    jp = dict(zip(sft.JUDGED, polished.judgement.rates, strict=True))
    jm = dict(zip(sft.JUDGED, mediocre.judgement.rates, strict=True))
    return [
        Row(
            "quality vs quantity default (100 polished vs 1000 mediocre, 60 steps each, eval every 5)",
            "<= 60 s",
            f"{wall:.1f} s wall, {cpu:.1f} s CPU",
            f"load avg {os.getloadavg()[0]:.1f}",
            wall <= 60,
        ),
        Row(
            "quality: held-out ÷ own loss, polished / mediocre (start -> end)",
            "polished > 2, mediocre ~1",
            f"{gp.ratio_start:.2f} -> {gp.ratio:.2f} / {gm.ratio_start:.2f} -> {gm.ratio:.2f}",
            f"polished own {gp.train:.3f}, held-out {gp.held_out:.3f}",
            gp.ratio > 2 and 0.7 < gm.ratio < 1.3,
        ),
        Row(
            "quality: held-out answers copied / right fact / full sentence, polished vs mediocre",
            "polished copies",
            f"{jp['copies a training answer']:.0%} / {jp[sft.JUDGED[0]]:.0%} / {jp['full sentence, stops']:.0%} vs "
            f"{jm['copies a training answer']:.0%} / {jm[sft.JUDGED[0]]:.0%} / {jm['full sentence, stops']:.0%}",
            "",
            jp["copies a training answer"] >= 0.25,
        ),
    ]


def wrong_facts_rows(loaded) -> list[Row]:
    wall, cpu, job = timed_job(sft.wrong_facts_comparison_work(loaded, sft.WrongFactsConfig()))
    frozen, trained = job.result
    return [
        Row(
            "style, not knowledge default (80 steps, embeddings frozen + trained side by side)",
            "<= 60 s",
            f"{wall:.1f} s wall, {cpu:.1f} s CPU",
            f"load avg {os.getloadavg()[0]:.1f}",
            wall <= 60,
        ),
        Row(
            "style, not knowledge: wrong capital answered / held-out right fact, frozen vs trained",
            "frozen keeps more",
            f"{frozen.taken_over}/5, {frozen.run.after.accuracy:.0%} vs "
            f"{trained.taken_over}/5, {trained.run.after.accuracy:.0%}",
            f"other country named: {frozen.other_country_rate:.0%} vs {trained.other_country_rate:.0%}",
            frozen.run.after.accuracy > trained.run.after.accuracy,
        ),
    ]


def page_peak_rss_mb() -> tuple[float, str]:
    """Drive the SFT page through one default run with AppTest; (peak RSS MB of this process, status)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.switch_page("pages/2_SFT.py")
    at.query_params["tab_sft"] = "Live SFT"  # the pages run only their open tab (ui.frame.demo_tabs)
    at.run()
    at.button(key="sft_live_start").click().run()
    status = "no status"
    for _ in range(600):
        time.sleep(0.5)
        at.run()
        if at.success or at.error:
            status = (at.success or at.error)[0].value
            break
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, status


def run() -> list[Row]:
    torch.set_num_threads(2)
    loaded = load_model("tiny-base", "cpu")
    rows = []
    wall, cpu, result = default_run(loaded)
    rows.append(
        Row(
            "default SFT run (60 steps, 200 pairs, incl. held-out answers before/after)",
            "<= 20 s",
            f"{wall:.1f} s wall, {cpu:.1f} s CPU",
            f"load avg {os.getloadavg()[0]:.1f}",
            wall <= 20,
        )
    )
    rows.append(
        Row(
            "default run: held-out accuracy / format",
            "clear change",
            f"{result.before.accuracy:.0%} -> {result.after.accuracy:.0%} / "
            f"{result.before.format_rate:.0%} -> {result.after.format_rate:.0%}",
            "",
            result.after.accuracy >= result.before.accuracy + 0.3,
        )
    )
    t = trl_vs_plain(loaded)
    rows.append(
        Row(
            "trl SFTTrainer vs plain torch loop, 40 steps, same batches (wall)",
            "<= 1.5x",
            f"{t['trl_s']:.1f} s vs {t['plain_s']:.1f} s",
            f"{t['trl_s'] / t['plain_s']:.2f}x plain loop",
            t["trl_s"] / t["plain_s"] <= 1.5,
        )
    )
    rows.append(
        Row(
            "same, CPU time (less sensitive to other processes on a shared machine)",
            "<= 1.5x",
            f"{t['trl_cpu']:.1f} s vs {t['plain_cpu']:.1f} s",
            f"{t['trl_cpu'] / t['plain_cpu']:.2f}x plain loop",
            t["trl_cpu"] / t["plain_cpu"] <= 1.5,
        )
    )
    rows.append(
        Row(
            "same batches: step-1 / step-40 loss, trl vs plain",
            "step 1 equal",
            f"{t['trl_first']:.4f} vs {t['plain_first']:.4f} / {t['trl_last']:.3f} vs {t['plain_last']:.3f}",
            "",
            abs(t["trl_first"] - t["plain_first"]) < 1e-3,
        )
    )
    rows += quality_rows(loaded)
    rows += wrong_facts_rows(loaded)
    rss, status = page_peak_rss_mb()
    rows.append(
        Row(
            "peak RSS, page + one default run (AppTest, in-process)", "<= 1536 MB", f"{rss:.0f} MB", status, rss <= 1536
        )
    )
    return rows


if __name__ == "__main__":
    print_table(run(), "SFT benchmarks")
