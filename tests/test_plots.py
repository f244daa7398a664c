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
