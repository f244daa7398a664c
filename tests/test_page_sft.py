"""AppTest drives the SFT page: the mask shown is trl's, the numbers are llmlab's, a live run starts,
is polled, stops, and shows before/after answers; bad input gives messages, never a traceback."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from llmlab import sft
from llmlab.instructions import examples_by_kind
from tests import conftest
from tests.test_pages import array, figure, run_page

PAGE = "pages/2_SFT.py"
IN_LOSS = "rgba(245,133,24,.40)"
NOT_IN_LOSS = "rgba(154,165,177,.15)"


def wait_for_run(at: AppTest, limit_s: float = 240) -> list[str]:
    """Re-run the page until no run panel is running or queued (AppTest never fires run_every); return
    every end status shown (this test's session only: tests/conftest.py gives each test its own session id)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        busy = any(c.value.startswith("Running…") for c in at.caption) or any(
            "Waiting for a free training slot" in i.value for i in at.info
        )
        if not busy:
            return [e.value for e in [*at.success, *at.error]] + [i.value for i in at.info if "Stopped" in i.value]
        time.sleep(0.5)
        at.run()
    raise AssertionError("the run did not finish in time")


def finished(statuses: list[str]) -> bool:
    return any(s.startswith("Finished") for s in statuses)


def chart(at: AppTest, key_fragment: str) -> dict:
    for n, element in enumerate(at.get("plotly_chart")):
        if key_fragment in element.proto.id:
            return figure(at, n)
    raise AssertionError(f"no chart {key_fragment}")


def chips_html(at: AppTest) -> str:
    return next(h.proto.body for h in at.get("html") if "<sub" in h.proto.body)


def test_mask_tab_shows_trls_mask_and_the_stated_loss_difference(tiny_base):
    at = run_page(PAGE)
    prompt = at.text_area(key="sft_mask_prompt").value
    response = at.text_area(key="sft_mask_response").value
    masked = sft.loss_mask(tiny_base.tokenizer, prompt, response)
    every = sft.loss_mask(tiny_base.tokenizer, prompt, response, completion_only_loss=False)
    losses = sft.token_losses(tiny_base.model, masked)

    html = chips_html(at)
    assert html.count(IN_LOSS) == sum(masked.in_loss) and html.count(NOT_IN_LOSS) == len(masked.ids) - sum(
        masked.in_loss
    )
    bars = chart(at, "sft_mask_chart")["data"][0]
    assert array(bars["y"])[1:] == pytest.approx(list(losses.per_token[1:]), abs=1e-5)
    metrics = {m.label: m.value for m in at.metric}
    mean_all = sft.token_losses(tiny_base.model, every).mean
    assert metrics["Loss, response only"] == f"{losses.mean:.3f}"
    assert metrics["Loss, every token"] == f"{mean_all:.3f}"
    assert metrics["Difference"] == f"{mean_all - losses.mean:+.3f}"

    at.toggle(key="sft_mask_every_token").set_value(True).run()
    html = chips_html(at)
    assert html.count(IN_LOSS) == sum(every.in_loss) == len(every.ids)  # trl's labels: every token


def test_choosing_an_example_fills_both_text_boxes_and_typing_your_own_keeps_them():
    at = run_page(PAGE)
    label, pair = list(examples_by_kind().items())[2]
    at.selectbox(key="sft_mask_example").set_value(label).run()
    assert at.text_area(key="sft_mask_prompt").value == pair.prompt
    assert at.text_area(key="sft_mask_response").value == pair.response
    assert at.query_params["sft_mask_example"] == label  # the link names the example shown
    at.selectbox(key="sft_mask_example").set_value("Type your own…").run()
    assert not at.exception and at.text_area(key="sft_mask_prompt").value == pair.prompt


@pytest.mark.parametrize(
    "prompt, response, message",
    [("", "Paris.", "instruction is empty"), ("Hi", "  ", "response is empty"), ("Hi", "word " * 300, "context")],
)
def test_mask_tab_bad_input_gives_a_message(prompt, response, message):
    at = run_page(PAGE)
    at.text_area(key="sft_mask_prompt").set_value(prompt)
    at.text_area(key="sft_mask_response").set_value(response).run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(message in i.value for i in at.info)


def test_live_run_starts_polls_and_shows_before_and_after():
    at = run_page(PAGE)
    at.slider(key="sft_live_steps").set_value(15).run()
    at.button(key="sft_live_start").click().run()
    statuses = wait_for_run(at)
    assert not at.exception, [e.message for e in at.exception]
    assert finished(statuses)
    loss = chart(at, "sft_live_loss")["data"][0]
    assert array(loss["x"]) == list(range(1, 16))
    answers = next(df.value for df in at.dataframe if "before SFT" in df.value.columns)
    assert list(answers.columns) == ["held-out question", "before SFT", "after SFT", "right?"]
    assert len(answers) == 30 and (answers["before SFT"] != answers["after SFT"]).any()
    metrics = {m.label: m for m in at.metric}
    assert "was" in metrics["Held-out accuracy"].proto.delta
    assert metrics["Well-formatted answers"].value != "0%"  # 15 steps already teach the format
    (download,) = conftest.model_downloads(at)  # the trained copy as a Hugging Face folder
    assert download.startswith("Unzip `llmlab-sft-tiny-base-") and "AutoModelForCausalLM" in download


def test_stop_mid_run_keeps_the_results_so_far():
    # (Two sessions: AppTest gives every instance the same session id, so that is tested in test_sft.py.)
    at = run_page(PAGE)
    at.slider(key="sft_live_steps").set_value(300).run()
    at.button(key="sft_live_start").click().run()
    deadline = time.monotonic() + 120
    while not at.get("plotly_chart") or not any("sft_live_loss" in c.proto.id for c in at.get("plotly_chart")):
        assert time.monotonic() < deadline
        time.sleep(0.5)
        at.run()
    at.button(key="sft_live_stop").click().run()
    statuses = wait_for_run(at)
    assert any("Stopped" in s for s in statuses) and not at.exception
    steps = array(chart(at, "sft_live_loss")["data"][0]["x"])
    assert 1 <= len(steps) < 300
    answers = next(df.value for df in at.dataframe if "before SFT" in df.value.columns)
    assert "after SFT" in answers.columns  # the stopped model still answers the held-out questions
    at.button(key="sft_live_reset").click().run()
    assert any("Press Start SFT" in c.value for c in at.caption) and not at.exception


def test_learning_rate_too_high_fails_with_a_message_and_the_page_keeps_working():
    at = run_page(PAGE)
    at.slider(key="sft_live_steps").set_value(30).run()
    at.select_slider(key="sft_live_lr").set_value(100.0).run()
    at.button(key="sft_live_start").click().run()
    statuses = wait_for_run(at)
    assert any("NaN" in s and "learning rate is too high" in s for s in statuses)
    assert not at.exception
    at.select_slider(key="sft_live_lr").set_value(3e-3).run()  # the page still answers
    assert not at.exception and at.button(key="sft_live_start").disabled is False


def test_lora_tab_shows_trainable_counts_and_untouched_base_weights(tiny_base):
    from peft import get_peft_model

    from llmlab.modeling import trainable_copy

    expected, total = get_peft_model(trainable_copy(tiny_base), sft.lora_config(4)).get_nb_trainable_parameters()
    at = run_page(PAGE)
    at.slider(key="sft_lora_rank").set_value(4)
    at.slider(key="sft_lora_steps").set_value(10).run()
    at.button(key="sft_lora_start").click().run()
    assert finished(wait_for_run(at)) and not at.exception
    table = next(df.value for df in at.dataframe if "trainable parameters" in df.value.columns)
    full, lora = table.to_dict("records")
    assert lora["method"] == "LoRA r=4" and lora["trainable parameters"] == f"{expected:,}"
    assert lora["% of all"] == f"{expected / total:.2%}"
    assert float(lora["largest change of an original weight"]) == 0.0
    assert float(full["largest change of an original weight"]) > 0.0
    assert int(full["trainable parameters"].replace(",", "")) > 10 * expected
    series = {trace["name"] for trace in chart(at, "sft_lora_loss")["data"]}
    assert series == {"full fine-tuning", "LoRA r=4"}
    full_download, lora_download = conftest.model_downloads(at)  # the full copy, and the adapter alone
    assert "llmlab-sft-tiny-base-" in full_download and "AutoModelForCausalLM" in full_download
    assert "llmlab-lora-tiny-base-" in lora_download and "PeftModel.from_pretrained" in lora_download


def test_quality_and_wrong_facts_tabs_run_and_draw():
    at = run_page(PAGE)
    at.slider(key="sft_q_polished").set_value(20)
    at.slider(key="sft_q_mediocre").set_value(100)
    at.slider(key="sft_q_steps").set_value(10).run()
    at.button(key="sft_quality_start").click().run()
    assert finished(wait_for_run(at)) and not at.exception
    bars = chart(at, "sft_quality_bars")["data"]
    assert [trace["name"] for trace in bars] == ["before (same start)", "20 polished", "100 mediocre"]
    assert [x.replace("<br>", " ") for x in bars[0]["x"]] == list(sft.JUDGED)  # judged without the template
    gap = chart(at, "sft_quality_gap")["data"]
    assert [trace["name"] for trace in gap] == [
        "20 polished: its own training pairs",
        "20 polished: held-out pairs (new countries)",
        "100 mediocre: its own training pairs",
        "100 mediocre: held-out pairs (new countries)",
    ]
    for trace in gap:  # evaluated before training and every 5 steps
        assert array(trace["x"]) == [0, 5, 10] and all(y > 0 for y in array(trace["y"]))
    polished_own, polished_held = array(gap[0]["y"]), array(gap[1]["y"])
    assert polished_own[-1] < polished_own[0] and polished_held[-1] < polished_held[0]
    gaps = next(df.value for df in at.dataframe if "held-out ÷ own" in df.value.columns)
    assert list(gaps["run"]) == ["20 polished", "100 mediocre"]
    answers = next(df.value for df in at.dataframe if "20 polished" in df.value.columns)
    assert len(answers) == 30
    assert any("held-out ÷ own went from" in m.value for m in at.markdown)

    at.slider(key="sft_wrong_steps").set_value(10).run()
    at.button(key="sft_wrong_start").click().run()
    assert finished(wait_for_run(at)) and not at.exception
    table = next(df.value for df in at.dataframe if "P(wrong) after" in df.value.columns)
    assert list(table["country"]) == list(sft.wrong_fact_pairs()[1])
    summary = next(df.value for df in at.dataframe if "embeddings trained" in df.value.columns)
    assert list(summary.columns) == ["measure", "embeddings frozen (default)", "embeddings trained"]
    assert list(summary["measure"]) == list(sft.FREEZE_MEASURES)
    bars = chart(at, "sft_wrong_bars")["data"]
    assert "wrong capital, after SFT (embeddings trained)" in [trace["name"] for trace in bars]
    assert any("Why the embeddings are frozen by default" in m.value for m in at.markdown)


def test_why_the_embeddings_are_frozen_is_said_in_presenter_mode_too():
    at = AppTest.from_file(str(conftest.ROOT / "app.py"), default_timeout=120)
    at.switch_page(PAGE)
    at.query_params["presenter"] = "1"
    at.run()
    assert not at.exception
    assert any("Why the embeddings are frozen by default" in m.value for m in at.markdown)
    assert at.toggle(key="sft_wrong_side_by_side").value is True  # the side-by-side switch is not hidden
