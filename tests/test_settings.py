"""The one settings form (ui/settings.py): URL values parsed, clamped or ignored with a notice; a setting written
once (its default and help from the core config); values kept while their widget is not drawn; advanced ones
hidden in presenter mode but in force; old link names still understood."""

from dataclasses import dataclass, field

import pytest
from streamlit.testing.v1 import AppTest

from ui.settings import KEPT, Option, option, options_of, parse, to_url

TEMPERATURE = Option("Temperature", 1.0, lo=0.05, hi=5.0)
STEPS = Option("Steps", 50, lo=1, hi=500)
FLAG = Option("Flag", False)
CHOICE = Option("Model", "tiny-base", choices=("tiny-base", "tiny-sft"))
BETAS = Option("β values", (0.1,), choices=(0.01, 0.1, 0.5, 1.0))


@pytest.mark.parametrize(
    "spec, raw, value, noticed",
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
def test_url_values_are_parsed_clamped_or_ignored(spec, raw, value, noticed):
    parsed, notice = parse("k", spec, raw, spec.choices)
    assert parsed == value and type(parsed) is type(value)
    assert (notice is not None) == noticed
    if notice:
        assert notice.startswith("'k")  # every notice names the setting


@pytest.mark.parametrize(
    "raw, value, noticed",
    [
        ("0.01,1", (0.01, 1.0), False),
        ("1,0.01", (0.01, 1.0), False),  # kept in the options' order
        ("1e-2,0.10,1,1", (0.01, 0.1, 1.0), False),  # any spelling of an option; repeats once
        ("", (), False),  # an empty selection is a selection
        ("0.1,x,nan,inf,-1,1e999", (0.1,), True),
    ],
)
def test_a_multiselect_link_keeps_the_known_options(raw, value, noticed):
    parsed, notice = parse("betas", BETAS, raw, BETAS.choices)
    assert parsed == value and (notice is not None) == noticed
    assert parse("betas", BETAS, to_url(list(parsed)), BETAS.choices)[0] == parsed  # a widget's list round-trips


def test_format_round_trips():
    for spec, value in [(TEMPERATURE, 0.35), (STEPS, 42), (FLAG, True), (CHOICE, "tiny-sft")]:
        assert parse("k", spec, to_url(value), spec.choices)[0] == value


@dataclass(frozen=True)
class CoreConfig:
    steps: int = field(default=80, metadata={"help": "Optimizer steps."})


@dataclass(frozen=True)
class DemoSettings:
    steps: int = option("Steps", lo=10, hi=300, step=10, core=(CoreConfig, "steps"))
    rate: float = option("Learning rate", 0.01, choices=(0.001, 0.01, 0.1), advanced=True, help="Step size.")


def test_a_setting_is_written_once_its_default_and_help_come_from_the_core_config():
    specs = options_of(DemoSettings)
    assert DemoSettings().steps == 80 and specs["steps"].help == "Optimizer steps."
    assert specs["rate"].kind == "select_slider" and specs["steps"].kind == "slider"


def form_script():
    """A page with one settings form: steps and the advanced rate in one row, drawn only when `show` is on."""
    import streamlit as st

    from tests.test_settings import DemoSettings
    from ui.settings import SettingsForm
    from ui.shell import ShellSettings

    SettingsForm(ShellSettings, "").widget("presenter")
    if st.toggle("Show the demo", True, key="show"):
        settings = SettingsForm(DemoSettings, "demo_").draw()
    else:
        settings = SettingsForm(DemoSettings, "demo_").values()
    st.markdown(f"in force: steps={settings.steps} rate={settings.rate:g}")


def in_force(at: AppTest) -> str:
    return at.markdown[-1].value


def test_the_form_restores_the_link_keeps_values_while_hidden_and_publishes_them():
    at = AppTest.from_function(form_script)
    at.query_params.update({"demo_steps": "1000", "demo_rate": "0.1"})
    at.run()
    assert not at.exception
    assert at.slider(key="demo_steps").value == 300 and in_force(at) == "in force: steps=300 rate=0.1"
    assert "'demo_steps' was above its range: set to 300." in [t.value for t in at.toast]
    at.slider(key="demo_steps").set_value(40).run()
    assert at.query_params["demo_steps"] == "40"  # a move rewrites the link
    at.toggle(key="show").set_value(False).run()  # the widgets are not drawn for a few runs...
    at.run()
    assert in_force(at) == "in force: steps=40 rate=0.1"  # ...their values stay in force
    at.toggle(key="show").set_value(True).run()
    assert at.slider(key="demo_steps").value == 40 and not at.toast  # and come back; no second notice
    assert KEPT in at.session_state


def test_presenter_mode_hides_advanced_settings_but_keeps_them_in_force_and_in_the_link():
    at = AppTest.from_function(form_script)
    at.query_params.update({"presenter": "1", "demo_rate": "0.001"})
    at.run()
    assert at.toggle(key="presenter").value is True
    assert not [s for s in at.select_slider if s.key == "demo_rate"]  # hidden for the projector
    assert in_force(at) == "in force: steps=80 rate=0.001" and at.query_params["demo_rate"] == "0.001"
    at.toggle(key="presenter").set_value(False).run()
    assert at.select_slider(key="demo_rate").value == 0.001


def test_presenter_flag_from_url_turns_presenter_mode_on_and_stays_in_url():
    from tests.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["presenter"] = "1"
    at.run()
    assert not at.exception
    assert at.toggle(key="presenter").value is True
    at.toggle(key="presenter").set_value(False).run()
    assert at.query_params["presenter"] in ("0", ["0"])


def test_garbage_presenter_flag_gives_a_notice_not_a_traceback():
    from tests.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["presenter"] = "<b>maybe</b>"
    at.run()
    assert not at.exception
    assert at.toggle(key="presenter").value is False
    assert any("presenter" in t.value for t in at.toast)
