"""The cards' code examples made runnable (lessons/code/, llmlab/cardcode.py, ui/demos/code_example.py): each
snippet runs in a subprocess and prints what its card promises, the diff shows every changed line with a reason,
a run times out and stops cleanly, and the page draws the diff, runs the pre-training snippet and shows " Paris".

The training snippets run a few steps each (LLMLAB_SNIPPET_STEPS); the whole file takes ~35 s on 2 shared cores."""

import os
import re
import time

import pytest
from streamlit.testing.v1 import AppTest

from llmlab import cardcode
from llmlab.lessons import load_lessons

CONCEPTS = ("pretraining", "sft", "rlhf", "dpo")
FLOAT = r"(-?\d+\.\d+)"


@pytest.fixture(scope="module")
def lessons():
    return load_lessons()


# -- the diff and its reasons -------------------------------------------------------------------------------


@pytest.mark.parametrize("concept", CONCEPTS)
def test_every_change_from_the_card_has_a_reason_and_every_reason_a_change(lessons, concept):
    card, runnable = lessons[concept].code_example, cardcode.runnable_source(concept)
    assert cardcode.unexplained(card, runnable) == []
    rows = cardcode.diff_rows(card, runnable)
    reasons = cardcode.hunk_reasons(rows)
    assert reasons and all(reasons.values())
    assert "trust_remote_code" not in runnable


@pytest.mark.parametrize("concept", CONCEPTS)
def test_the_diff_keeps_both_texts_whole_and_marks_exactly_the_lines_that_differ(lessons, concept):
    card = [line.rstrip() for line in lessons[concept].code_example.splitlines()]
    code = cardcode.code_only(cardcode.runnable_source(concept)).splitlines()
    rows = cardcode.diff_rows(lessons[concept].code_example, cardcode.runnable_source(concept))
    assert [r.card for r in rows if r.card is not None] == card  # every card line once, in order
    assert [r.runnable for r in rows if r.runnable is not None] == code  # every code line once, in order
    for row in rows:
        if row.kind == "same":
            assert row.card == row.runnable and row.hunk is None and not row.reason
        elif row.kind == "changed":
            assert row.card is not None and row.runnable is not None and row.card != row.runnable
        elif row.kind == "added":
            assert row.card is None and row.runnable is not None
        else:
            assert row.kind == "removed" and row.card is not None and row.runnable is None
    # Line by line: a card line shown as unchanged is in the runnable file; one missing from it is marked.
    for row in rows:
        if row.card is not None and row.card not in code:
            assert row.kind in ("changed", "removed"), row


def test_the_marked_lines_are_the_ones_a_reader_would_mark(lessons):
    """A hand check of two cards: exactly these card lines differ from the runnable version."""
    expected = {
        "pretraining": {
            'tok = AutoTokenizer.from_pretrained("gpt2")',
            'model = AutoModelForCausalLM.from_pretrained("gpt2")',
        },
        "dpo": {
            "from datasets import load_dataset",
            'ds = load_dataset("trl-lib/ultrafeedback_binarized", split="train")',
            "    ref_model=sft_model, # reference model (frozen)",
            "    train_dataset=ds, tokenizer=tok,",
            "    args=DPOConfig(beta=0.1, num_train_epochs=1,",
            '                   learning_rate=5e-7, output_dir="dpo-llama"),',
        },
    }
    for concept, lines in expected.items():
        rows = cardcode.diff_rows(lessons[concept].code_example, cardcode.runnable_source(concept))
        assert {r.card for r in rows if r.kind in ("changed", "removed")} == lines
    rows = cardcode.diff_rows(lessons["sft"].code_example, cardcode.runnable_source("sft"))
    renamed = next(r for r in rows if r.card == "    model=model, tokenizer=tok, train_dataset=ds,")
    assert renamed.kind == "changed" and renamed.runnable == "    model=model, processing_class=tok, train_dataset=ds,"
    assert "processing_class" in renamed.reason


def test_reasons_land_on_their_change_and_a_missing_or_stray_reason_is_reported():
    card = "a = 1\nb = 2\nc = 3\nd = 4"
    runnable = "a = 1\n# why: two instead of one\nb = 20\nc = 3\n# why: d is not needed\n# why: e is new\ne = 5"
    rows = cardcode.diff_rows(card, runnable)
    assert [(r.card, r.runnable, r.kind, r.hunk) for r in rows] == [
        ("a = 1", "a = 1", "same", None),
        ("b = 2", "b = 20", "changed", 0),
        ("c = 3", "c = 3", "same", None),
        ("d = 4", "e = 5", "changed", 1),  # similar lines of one change are paired
    ]
    assert rows[1].reason == "two instead of one" and rows[3].reason == "d is not needed e is new"
    assert cardcode.unexplained(card, runnable) == []
    # A removal explained above the next unchanged line; a reason on an unchanged line; a change with none.
    assert cardcode.unexplained("x\ny\nz", "x\n# why: y went\nz") == []
    assert cardcode.diff_rows("x\ny\nz", "x\n# why: y went\nz")[1] == cardcode.DiffRow(
        "y", None, "removed", "y went", 0
    )
    [stray] = cardcode.unexplained("x\ny", "# why: nothing changed here\nx\ny")
    assert "unchanged line" in stray
    [missing] = cardcode.unexplained("x\ny", "x\nY")
    assert "no '# why:' reason" in missing


def test_the_page_diff_escapes_every_text():
    from ui.demos.code_example import diff_html

    rows = [
        cardcode.DiffRow("<b>card</b>", None, "removed", "a <i>reason</i>", 0),
        cardcode.DiffRow(None, "<script>x()</script>", "added", "", 0),
        cardcode.DiffRow("f(<a>)", "f(<img src=x>)", "changed", "", 0),
    ]
    page = diff_html(rows)
    assert "<script>" not in page and "<b>" not in page and "<i>" not in page and "<img" not in page
    assert "&lt;b&gt;card&lt;/b&gt;" in page and "&lt;script&gt;x()&lt;/script&gt;" in page
    assert "why: a &lt;i&gt;reason&lt;/i&gt;" in page
    assert (
        "f(&lt;<del>a</del>&gt;)" in page and "f(&lt;<ins>img src=x</ins>&gt;)" in page
    )  # only our own tags mark changes


# -- running a snippet ---------------------------------------------------------------------------------------


def test_the_pretraining_snippet_prints_paris():
    result = cardcode.run_snippet("pretraining", timeout_s=90)
    assert result.ok, result.tail()
    assert result.output.splitlines()[-1] == " Paris"


def test_the_sft_snippet_trains_and_its_loss_falls():
    result = cardcode.run_snippet("sft", timeout_s=120, steps=4)
    assert result.ok, result.tail()
    first, last, steps = re.search(
        rf"SFT loss: first step {FLOAT} -> last step {FLOAT} \((\d+) steps\)", result.output
    ).groups()
    assert int(steps) == 4 and float(last) < float(first)


def test_the_rlhf_snippet_scores_with_the_bundled_reward_model_and_trains_with_the_projects_ppo(lessons):
    from llmlab.modeling import load_model
    from llmlab.reward import RewardRunConfig, reward_model_folder

    folder = reward_model_folder(load_model("tiny-sft", "cpu"), RewardRunConfig())
    source = cardcode.runnable_source("rlhf")
    # The snippet names the bundled, unbiased reward model's folder (its name is a hash of how it was trained).
    assert f'model="{folder.relative_to(cardcode.REPO_ROOT).as_posix()}"' in source
    # trl has no PPOTrainer: the project's (llmlab/ppo.py), driven by the card's own loop, unchanged.
    assert "from llmlab.ppo import PPOTrainer, PPOConfig" in source.splitlines()
    rows = cardcode.diff_rows(lessons["rlhf"].code_example, source)
    loop = [line for line in lessons["rlhf"].code_example.splitlines() if "ppo.generate" in line or "ppo.step" in line]
    assert len(loop) == 2 and all(any(r.kind == "same" and r.card == line for r in rows) for line in loop)
    result = cardcode.run_snippet("rlhf", timeout_s=120, steps=2)
    assert result.ok, result.tail()
    before, after = re.search(rf"before {FLOAT} -> after {FLOAT}", result.output).groups()
    assert all(abs(float(x)) < 50 for x in (before, after))
    assert before != after  # the same random draws, other answers: the model was trained in place


def test_the_dpo_snippet_trains_against_a_separate_reference_and_the_margins_grow():
    result = cardcode.run_snippet("dpo", timeout_s=120, steps=6)
    assert result.ok, result.tail()
    first, last, steps = re.search(
        rf"DPO rewards/margins: first step {FLOAT} -> last step {FLOAT} \((\d+) steps\)", result.output
    ).groups()
    assert int(steps) == 6 and float(first) == 0.0 and float(last) > float(first)


def test_output_streams_line_by_line_and_a_failure_keeps_its_traceback(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("import time\nprint('one', flush=True)\ntime.sleep(1.0)\nprint('two')\n")
    seen: list[tuple[str, float]] = []
    result = cardcode.run_snippet(script, timeout_s=30, on_output=lambda line: seen.append((line, time.perf_counter())))
    assert result.ok and result.output == "one\ntwo"
    assert [line for line, _ in seen] == ["one", "two"] and seen[1][1] - seen[0][1] > 0.5  # not at the end only
    broken = tmp_path / "broken.py"
    broken.write_text("print('about to fail')\nraise KeyError('oops')\n")
    result = cardcode.run_snippet(broken, timeout_s=30)
    assert result.returncode == 1 and not result.ok and "KeyError: 'oops'" in result.tail()
    assert "failed (exit code 1)" in cardcode.failure_message(result, "sft")


def test_a_snippet_that_runs_too_long_is_killed_at_its_timeout(tmp_path):
    script = tmp_path / "sleeps.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\nprint('never')\n")
    result = cardcode.run_snippet(script, timeout_s=1.5)
    assert result.timed_out and result.returncode is None and not result.ok
    assert 1.5 <= result.seconds < 10 and result.output == "started"
    assert "time limit" in cardcode.failure_message(result, "sft")


def test_a_snippet_stops_when_asked(tmp_path):
    script = tmp_path / "sleeps.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    lines: list[str] = []
    result = cardcode.run_snippet(script, timeout_s=60, on_output=lines.append, should_stop=lambda: bool(lines))
    assert result.stopped and not result.timed_out and result.returncode is None and result.seconds < 10
    assert cardcode.failure_message(result) is None  # stopping is not a failure


def test_the_environment_is_offline_and_thread_capped():
    env = cardcode.snippet_env(steps=3)
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["OMP_NUM_THREADS"] in ("1", "2") and env[cardcode.STEPS_ENV] == "3"
    assert str(cardcode.REPO_ROOT) in env["PYTHONPATH"].split(os.pathsep)
    with pytest.raises(ValueError):
        cardcode.run_snippet("no-such-card")
    assert cardcode.terminal_command("sft") == "python lessons/code/sft.py"


# -- the page ---------------------------------------------------------------------------------------------


def code_example_page():
    from llmlab.lessons import load_lessons
    from ui.demos import code_example

    code_example.draw(load_lessons()["pretraining"])
    code_example.draw(load_lessons()["sft"])  # two cards on one page: their widget keys do not collide


def wait_until_idle(at: AppTest, limit_s: float = 120) -> None:
    """Re-run the page until no run is running or queued (AppTest never fires run_every)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        busy = any(c.value.startswith("Running…") for c in at.caption) or any(
            "Waiting for a free training slot" in i.value for i in at.info
        )
        if not busy:
            return
        time.sleep(0.5)
        at.run()
    raise AssertionError("the snippet did not finish in time")


def test_the_page_shows_the_diff_runs_the_snippet_and_shows_paris():
    at = AppTest.from_function(code_example_page, default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    diffs = [h.proto.body for h in at.get("html") if "cardcode-diff" in h.proto.body]
    assert len(diffs) == 2
    assert "<del>gpt2</del>" in diffs[0] and "<ins>models/tiny-base</ins>" in diffs[0]
    assert "why: no network here" in diffs[0]
    assert "processing_class" in diffs[1] and diffs[1].count('class="why"') >= 5
    commands = [c.value for c in at.code]
    assert "python lessons/code/pretraining.py" in commands and "python lessons/code/sft.py" in commands
    run = at.button(key="card_code_pretraining_start")
    assert run.label == "Run it here" and not run.disabled
    assert at.button(key="card_code_pretraining_stop").disabled

    run.click().run()
    wait_until_idle(at)
    assert not at.exception, [e.message for e in at.exception]
    assert any(s.value.startswith("Finished") for s in at.success)
    assert any(c.value.splitlines()[-1:] == [" Paris"] for c in at.code)

    # The SFT card's run, stopped at once: a "stopped" status, no error, the buttons back.
    at.button(key="card_code_sft_start").click().run()
    at.button(key="card_code_sft_stop").click().run()
    wait_until_idle(at)
    assert not at.exception and not at.error
    assert any("Stopped" in i.value for i in at.info)
    assert at.button(key="card_code_sft_start").disabled is False
