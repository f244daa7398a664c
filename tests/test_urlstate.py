"""Settings in the URL: parsing, clamping, and the presenter flag round-tripping through a page."""

import pytest

from ui.urlstate import Param

TEMPERATURE = Param("t", 1.0, lo=0.05, hi=5.0)
STEPS = Param("steps", 50, lo=1, hi=500)
FLAG = Param("flag", False)
CHOICE = Param("model", "tiny-base", choices=("tiny-base", "tiny-sft"))


@pytest.mark.parametrize(
    "param, raw, value, noticed",
    [
        (TEMPERATURE, "0.7", 0.7, False),
        (TEMPERATURE, "99", 5.0, True),
        (TEMPERATURE, "-1", 0.05, True),
        (TEMPERATURE, "nan", 1.0, True),
        (TEMPERATURE, "inf", 1.0, True),
        (TEMPERATURE, "abc", 1.0, True),
        (TEMPERATURE, "", 1.0, True),
        (STEPS, "1e9", 500, True),
        (STEPS, "12.7", 12, False),
        (FLAG, "1", True, False),
        (FLAG, "yes please", False, True),
        (CHOICE, "tiny-sft", "tiny-sft", False),
        (CHOICE, "<script>", "tiny-base", True),
    ],
)
def test_url_values_are_parsed_clamped_or_ignored(param, raw, value, noticed):
    parsed, notice = param.parse(raw)
    assert parsed == value and type(parsed) is type(value)
    assert (notice is not None) == noticed


def test_format_round_trips():
    for param, value in [(TEMPERATURE, 0.35), (STEPS, 42), (FLAG, True), (CHOICE, "tiny-sft")]:
        assert param.parse(param.format(value))[0] == value


def test_presenter_flag_from_url_turns_presenter_mode_on_and_stays_in_url():
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["presenter"] = "1"
    at.run()
    assert not at.exception
    assert at.toggle(key="presenter").value is True
    at.toggle(key="presenter").set_value(False).run()
    assert at.query_params["presenter"] in ("0", ["0"])


def test_garbage_presenter_flag_gives_a_notice_not_a_traceback():
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["presenter"] = "<b>maybe</b>"
    at.run()
    assert not at.exception
    assert at.toggle(key="presenter").value is False
    assert any("presenter" in t.value for t in at.toast)
