"""The demos computed in the browser (ui/instant.py), in Chromium.

Their formulas (ui/instant/math.js) are evaluated in a blank page and compared with llmlab's on fixed cases,
extremes included (temperature 0.05 and 5, top-k 1 and above the vocabulary, top-p 0 and 1, β from 0.001 to 1000
and ∞, DPO margins of ±10⁴): the same numbers, no NaN. Then a real drag on the explorer's temperature slider: the
chart follows while the button is held, and the value reaches the URL when it is let go.
"""

import json
import math

import numpy as np
import pytest
import torch

from llmlab import dpo, nexttoken, rlhf
from tests.browser_server import browser_available, streamlit_server, wait_for_app
from ui.instant import ASSETS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not browser_available(), reason="needs /usr/bin/chromium and the playwright package"),
]


@pytest.fixture(scope="module")
def math_js(browser):
    """A blank page with ui/instant/math.js loaded; call(fn, *args) runs one of its functions."""
    page = browser.new_page()
    page.add_script_tag(content=(ASSETS / "math.js").read_text())

    def call(fn: str, *args):
        # JSON has no Infinity: ±1e308 * 10 is sent as a string and turned back in the page
        encoded = (
            json.dumps(args, allow_nan=True).replace("Infinity", '"Infinity"').replace('-"Infinity"', '"-Infinity"')
        )
        out = page.evaluate(
            "([fn, args]) => { const back = (x) => x === 'Infinity' ? Infinity : x === '-Infinity' ? -Infinity :"
            " Array.isArray(x) ? x.map(back) : (x && typeof x === 'object') ?"
            " Object.fromEntries(Object.entries(x).map(([k, v]) => [k, back(v)])) : x;"
            " const r = window[fn](...JSON.parse(args).map(back));"
            " return JSON.stringify(r, (k, v) => typeof v === 'number' && !Number.isFinite(v) ? String(v) : v); }",
            [fn, encoded],
        )
        return json.loads(out, object_hook=None)

    yield call
    page.close()


def numbers(values) -> np.ndarray:
    """A JS result as floats ('-Infinity', 'NaN' and 'Infinity' came back as strings)."""
    return np.array([float(v) for v in values])


def real_logits(prompt: str) -> list[float]:
    from ui.models import shared_model

    model = shared_model("tiny-base", "cpu")
    ids = model.tokenizer(prompt)["input_ids"]
    return nexttoken.next_token_logits(model.model, ids).tolist()


SAMPLING = [(t, k, p) for t in (0.05, 1.0, 5.0) for k in (0, 1, 3, 5_000) for p in (0.0, 0.5, 0.9, 1.0)]


@pytest.mark.parametrize("prompt", ["The capital of France is", "🎉 <b>"])
def test_sampling_distribution_and_its_caption_match_llmlab(math_js, prompt):
    logits = real_logits(prompt)
    tied = [2.0, 2.0, 1.0, 1.0, 1.0, -3.0, 0.5]  # ties at the k-th token and at the nucleus' edge
    for values in (logits, tied):
        for temperature, top_k, top_p in SAMPLING:
            case = f"T={temperature}, top-k={top_k}, top-p={top_p}"
            probs, kept = nexttoken.filtered_sampling(torch.tensor(values), temperature, top_k or None, top_p)
            got = math_js("filteredSampling", values, temperature, top_k, top_p)
            got_probs = numbers(got["probs"])
            assert np.isfinite(got_probs).all() and got_probs.sum() == pytest.approx(1, abs=1e-9), case
            np.testing.assert_allclose(got_probs, probs.numpy(), rtol=1e-9, atol=1e-15, err_msg=case)
            assert got["kept"] == kept.tolist(), case  # the filters keep the same tokens
            summary = nexttoken.sampling_summary(torch.tensor(values), temperature, top_k, top_p)
            assert math_js("samplingSummary", values, temperature, top_k, top_p) == summary, case


def candidates(seed: int) -> rlhf.Candidates:
    """Scored candidates like the sweep's: one log-probability too small for a float (-1e300, as the page sends
    it), rewards on the reward model's scale, ties at the best reward."""
    rng = np.random.default_rng(seed)
    n = 9
    ref = rng.normal(-12, 5, n)
    ref[4] = -1e300
    proxy = rng.normal(0, 3, n)
    proxy[7] = proxy.max()
    return rlhf.Candidates(
        prompt="", texts=tuple(f"answer {i}" for i in range(n)), counts=(1,) * n, ref_logprobs=ref, proxy=proxy,
        true=(rng.random(n) > 0.5).astype(float), lengths=rng.integers(3, 30, n).astype(float),
        stopped=(True,) * n, padding=rng.integers(0, 3, n).astype(float),
    )  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1])
def test_the_kl_regularised_optimum_matches_llmlab_from_beta_0_001_to_infinity(math_js, seed):
    cands = candidates(seed)
    sent = {k: getattr(cands, k).tolist() for k in ("ref_logprobs", "proxy", "true", "lengths", "padding")}
    for beta in (*rlhf.SWEEP_BETAS, 1e-9, math.inf):
        expected = rlhf.optimum_at(cands, beta)
        got = math_js("optimumAt", sent, beta)
        policy = numbers(got["policy"])
        assert np.isfinite(policy).all() and policy.sum() == pytest.approx(1), beta
        np.testing.assert_allclose(policy, expected.policy, atol=1e-9, err_msg=str(beta))
        assert float(got["kl"]) == pytest.approx(expected.kl, rel=1e-7, abs=1e-12), beta
        for js, py in [("expectedProxy", "expected_proxy"), ("expectedTrue", "expected_true"),
                       ("expectedLength", "expected_length"), ("expectedPadding", "expected_padding")]:  # fmt: skip
            assert float(got[js]) == pytest.approx(getattr(expected, py), rel=1e-9, abs=1e-12), (beta, js)
    best = cands.proxy == cands.proxy.max()  # two tied answers
    on_best = numbers(math_js("optimumAt", sent, 0.001)["policy"])[best].sum()
    assert on_best > 0.99  # β → 0: all mass on the best-scored answers


def test_the_dpo_loss_and_gradient_weight_match_llmlab_at_every_slider_beta(math_js):
    margins = [-1e4, -300.0, *np.linspace(-20, 20, 41).tolist(), 300.0, 1e4]
    m = torch.tensor(margins, dtype=torch.float64)
    for beta in dpo.LOSS_BETAS:
        loss = numbers([math_js("dpoLoss", x, beta) for x in margins])
        weight = numbers([math_js("dpoGradientWeight", x, beta) for x in margins])
        assert np.isfinite(loss).all() and np.isfinite(weight).all(), beta
        np.testing.assert_allclose(loss, dpo.dpo_loss(m, beta).numpy(), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(weight, dpo.dpo_gradient_weight(m, beta).numpy(), rtol=1e-12, atol=1e-300)


# -- a real drag on the page -------------------------------------------------------------------------------


def top_probability(page) -> float:
    """The sampling bar of the most likely token, as the chart labels it (e.g. '61.3%')."""
    return float(page.locator(".instant .out text.value").first.text_content().rstrip("%")) / 100


def test_dragging_the_temperature_redraws_the_chart_before_the_server_hears_of_it(browser):
    with streamlit_server() as url:
        page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
        page.goto(f"{url}/Pretraining")
        wait_for_app(page)
        page.locator(".instant .chart").first.wait_for(timeout=90_000)
        root = page.locator(".instant").first
        assert "Paris" in root.text_content()
        before, draws = top_probability(page), int(root.get_attribute("data-draws"))
        caption = page.locator(".instant .caption").first.text_content()
        assert "of 1,118 tokens can be sampled" in caption

        slider = page.get_by_label("Temperature")
        box = slider.bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] * 0.19, y)  # the thumb: 1.0 on 0.05 … 5
        page.mouse.down()
        for step in range(1, 11):  # to the right end, in 10 moves
            page.mouse.move(box["x"] + box["width"] * (0.19 + 0.081 * step), y)
        page.wait_for_timeout(300)
        held = top_probability(page)
        assert int(root.get_attribute("data-draws")) >= draws + 5  # redrawn while dragged
        assert held < before / 2  # hotter: the top token loses most of its probability
        assert "pt_temperature=1" in page.url or "pt_temperature" not in page.url  # the server has not heard yet
        page.mouse.up()  # the end of the drag: the value goes to the settings form, and so to the URL
        page.wait_for_function("() => /pt_temperature=(4\\.|5)/.test(location.search)", timeout=30_000)
        assert top_probability(page) == pytest.approx(held, abs=0.002)  # the server's rerun kept the drawn value
        assert page.locator('[data-testid="stException"]').count() == 0
