"""Figures built from plotly JSON (the fast path of slider reruns) are the figures plotly itself would build."""

import pytest

from llmlab import plots
from llmlab.nexttoken import TokenProb

TOKENS = [TokenProb(7, " Paris", 0.61), TokenProb(3, "<b>x</b>", 0.2), TokenProb(9, "\n", 0.1)]


def _built(monkeypatch, validate: bool, **kwargs) -> dict:
    monkeypatch.setenv(plots.VALIDATE_ENV, "1" if validate else "0")
    return plots.next_token_bars(TOKENS, **kwargs).to_dict()


@pytest.mark.parametrize(
    "kwargs", [{}, {"compare": TOKENS[::-1], "highlight_id": 3, "title": "after <prompt>"}], ids=["one", "compare"]
)
def test_unchecked_figure_equals_the_one_plotly_checks(monkeypatch, kwargs):
    assert _built(monkeypatch, False, **kwargs) == _built(monkeypatch, True, **kwargs)


SPEC_BUILT = {
    "loss curve": lambda: plots.loss_curve([1, 2, 3], [7.1, 3.2, 1.5], "Loss <live>", 7.02, "ln V: a uniform guess"),
    "loss curve, no line": lambda: plots.loss_curve([1, 2], [2.0, 1.0], start_line=float("nan")),
    "top-1 lines": lambda: plots.token_probability_lines(
        [10, 20], {" the": [0.2, 0.1], " Paris": [0.01, 0.6]}, "top-1", highlight=" Paris"
    ),  # fmt: skip
}


@pytest.mark.parametrize("name", SPEC_BUILT)
def test_every_spec_built_figure_equals_the_checked_one(monkeypatch, name):
    monkeypatch.setenv(plots.VALIDATE_ENV, "0")
    unchecked = SPEC_BUILT[name]().to_dict()
    monkeypatch.setenv(plots.VALIDATE_ENV, "1")
    assert unchecked == SPEC_BUILT[name]().to_dict()


def test_a_live_loss_curve_takes_new_points_in_place(monkeypatch):
    monkeypatch.setenv(plots.VALIDATE_ENV, "0")
    fig = plots.loss_curve([1], [7.0], start_line=7.02)
    fig.data[0].x, fig.data[0].y = [1, 2, 3], [7.0, 5.0, 4.0]  # what the live view does on a redraw
    data = fig.to_dict()["data"][0]
    assert list(data["x"]) == [1, 2, 3] and list(data["y"]) == [7.0, 5.0, 4.0]
    assert fig.layout.shapes[0].y0 == 7.02


def test_next_token_bars_draws_the_tokens_most_likely_on_top(monkeypatch):
    fig = _built(monkeypatch, False, compare=TOKENS, highlight_id=3, title="Next <token>")
    raw, sampled = fig["data"]
    assert sampled["y"] == ["&#x27; Paris&#x27;", "&#x27;&lt;b&gt;x&lt;/b&gt;&#x27;", "&#x27;\\n&#x27;"]  # escaped
    assert sampled["x"] == [0.61, 0.2, 0.1] and raw["x"] == [0.61, 0.2, 0.1]
    assert sampled["marker"]["color"][1] == plots.HIGHLIGHT and sampled["marker"]["color"][0] == plots.ACCENT
    layout = fig["layout"]
    assert layout["title"]["text"] == "Next &lt;token&gt;"
    assert layout["yaxis"]["autorange"] == "reversed" and layout["xaxis"]["title"]["text"]
    assert layout["showlegend"] is True


def test_checked_mode_rejects_a_wrong_property(monkeypatch):
    monkeypatch.setenv(plots.VALIDATE_ENV, "1")
    with pytest.raises(ValueError, match="colour"):
        plots.from_spec([{"type": "bar", "colour": "red"}], {})
    monkeypatch.setenv(plots.VALIDATE_ENV, "0")
    plots.from_spec([{"type": "bar", "colour": "red"}], {})  # unchecked: the reason it is fast


def test_long_category_names_wrap_and_stay_escaped():
    assert plots.wrapped_label("tiny-sft's own answers, plain DPO", 18) == "tiny-sft&#x27;s own<br>answers, plain DPO"
    assert plots.wrapped_label("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
