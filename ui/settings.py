"""The one settings form: a demo's settings are a frozen dataclass whose fields say how each is edited.

Each field is an `option(...)`: its label, default, bounds or choices, help text and whether it is "advanced"
(hidden in presenter mode, its value still in force). A field that mirrors a core config field names it with
`core=(PretrainConfig, "steps")`, and takes that field's default and help text from there: the slider says
what the code says, and a setting is written once.

    @dataclass(frozen=True)
    class LiveSettings:
        steps: int = option("Steps", lo=10, hi=20_000, step=10, widget=NUMBER, core=(PretrainConfig, "steps"))
        lr: float = option("Learning rate", choices=RATES, advanced=True, core=(PretrainConfig, "learning_rate"))

    form = SettingsForm(LiveSettings, "pt_live_")   # widget keys and URL names: pt_live_steps, pt_live_lr
    settings = form.draw()                           # the widgets in one row; returns LiveSettings(...)
    # or place them: form.widget("steps", column); ...; settings = form.done()
    # a tab that only reads another tab's settings: SettingsForm(LiveSettings, "pt_live_").values()

Every setting round-trips through the URL, TensorFlow-Playground style: a link reproduces a view. The first
time a session uses a form, valid URL values are taken (numbers clamped to their bounds, unknown choices
dropped), each bad one with a toast saying what was done instead. Drawing the form writes the values back to
the URL. Values are kept in the session (`st.session_state`), also while their tab is closed or their widget
hidden. "Reset this page" (ui/shell.py) forgets every value whose key starts with the page's prefix.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

import streamlit as st

from ui.text import md_escape

S = TypeVar("S")

SLIDER, SELECT_SLIDER, NUMBER, SELECTBOX, RADIO, TOGGLE, MULTISELECT = (
    "slider", "select_slider", "number", "selectbox", "radio", "toggle", "multiselect",
)  # fmt: skip
KEPT = "_settings"  # session_state: {widget key: value} of every setting this session used
RESTORED = "_settings_restored"  # session_state: the prefixes whose URL values were taken
# Links shared before a setting was renamed keep working: old URL name -> new name.
RENAMED = {
    "rl_beta": "rl_sweep_beta",
    "rl_kl": "rl_online_kl",
    "rl_steps": "rl_online_steps",
    "rl_lr": "rl_online_lr",
    "dpo_example": "dpo_loss_example",
}


@dataclass(frozen=True)
class Option:
    """How one setting is shown and checked (the `option` metadata of a settings dataclass field)."""

    label: str
    default: Any  # its type (bool, int, float, str, tuple for a multiselect) is the setting's type
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    widget: str | None = None  # None: chosen from the type (toggle, multiselect, select_slider, selectbox, slider)
    help: str = ""
    advanced: bool = False  # hidden in presenter mode; its value still applies
    labels: Mapping[Any, str] | None = None  # how a choice is shown (default: numbers as %g, text as is)
    number_format: str | None = None  # number_input's printf format, e.g. "%.3f"

    @property
    def kind(self) -> str:
        if self.widget:
            return self.widget
        if isinstance(self.default, bool):
            return TOGGLE
        if isinstance(self.default, tuple):
            return MULTISELECT
        if self.choices is not None:
            return SELECT_SLIDER if _numeric(self.default) else SELECTBOX
        return SLIDER

    def show(self, value: Any) -> str:
        if self.labels is not None and value in self.labels:
            return self.labels[value]
        return f"{value:g}" if isinstance(value, float) else str(value)


def option(
    label: str,
    default: Any = dataclasses.MISSING,
    *,
    core: tuple[type, str] | None = None,
    help: str | None = None,
    **spec: Any,
) -> Any:
    """A settings dataclass field (see the module docstring); `spec` takes the other `Option` fields."""
    if core is not None:
        source = next(f for f in fields(core[0]) if f.name == core[1])
        if default is dataclasses.MISSING:
            default = source.default
        if help is None:
            help = source.metadata.get("help", "")
    if default is dataclasses.MISSING:
        raise TypeError(f"option {label!r} needs a default (or core=)")
    described = Option(label, default, help=help or "", **spec)
    return dataclasses.field(default=default, metadata={"option": described})


def options_of(cls: type) -> dict[str, Option]:
    """Field name -> its Option, for a settings dataclass."""
    return {f.name: f.metadata["option"] for f in fields(cls) if "option" in f.metadata}


def help_of(config: type, name: str) -> str:
    """A core config field's help text (for a widget that is not a setting, e.g. a probe prompt)."""
    return next(f.metadata.get("help", "") for f in fields(config) if f.name == name)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _quoted(raw: str) -> str:
    """URL text quoted in a notice: cut short and Markdown-escaped (a link's text is never markup)."""
    return md_escape(raw[:40])


def to_url(value: Any) -> str:
    """How a value is written in the URL: numbers as %g, booleans as 1/0, a selection comma-separated."""
    if isinstance(value, tuple | list):
        return ",".join(to_url(item) for item in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse(key: str, spec: Option, raw: str, choices: tuple[Any, ...] | None) -> tuple[Any, str | None]:
    """(value, notice): the URL's text as a valid value, or the default with a notice saying why."""
    if isinstance(spec.default, tuple):
        return _parse_selection(key, raw, choices or ())
    kind = type(spec.default)
    try:
        if kind is bool:
            if raw.lower() not in ("1", "0", "true", "false"):
                raise ValueError
            value: Any = raw.lower() in ("1", "true")
        elif kind is int:
            value = int(float(raw))
        elif kind is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
        else:
            value = raw
    except (ValueError, OverflowError):
        return spec.default, f"'{key}={_quoted(raw)}' is not a valid value: using {spec.default}."
    if choices is not None and value not in choices:
        return spec.default, f"'{key}={_quoted(raw)}' is not one of the options: using {spec.default}."
    if spec.lo is not None and value < spec.lo:
        return kind(spec.lo), f"'{key}' was below its range: set to {kind(spec.lo)}."
    if spec.hi is not None and value > spec.hi:
        return kind(spec.hi), f"'{key}' was above its range: set to {kind(spec.hi)}."
    return value, None


def _parse_selection(key: str, raw: str, choices: tuple[Any, ...]) -> tuple[tuple[Any, ...], str | None]:
    """A multiselect's comma-separated choices, in the options' order; unknown ones are dropped."""
    by_text = {to_url(choice): choice for choice in choices}
    numeric = all(_numeric(choice) for choice in choices)
    picked, unknown = [], []
    for text in filter(None, (part.strip() for part in raw.split(","))):
        if numeric and text not in by_text:
            try:  # "0.10" and "1e-1" name the option 0.1 too
                text = to_url(float(text))
            except (ValueError, OverflowError):
                pass
        (picked if text in by_text else unknown).append(text)
    value = tuple(choice for text, choice in by_text.items() if text in picked)
    if unknown:
        ignored = _quoted(", ".join(t[:20] for t in unknown[:3]))
        return value, f"'{key}': ignored {ignored} (not one of the options)."
    return value, None


def _valid(spec: Option, value: Any, choices: tuple[Any, ...] | None) -> bool:
    """Whether a kept value can go into its widget (a stale session or a choice that is gone: not)."""
    if isinstance(spec.default, tuple):
        return isinstance(value, tuple | list) and all(v in (choices or ()) for v in value)
    if isinstance(spec.default, bool) != isinstance(value, bool):
        return False
    if choices is not None:
        return value in choices
    if _numeric(spec.default):
        if not _numeric(value) or not math.isfinite(value):
            return False
        return (spec.lo is None or value >= spec.lo) and (spec.hi is None or value <= spec.hi)
    return isinstance(value, type(spec.default))


class SettingsForm(Generic[S]):
    """One demo's settings: restored from the URL, drawn as widgets, published back (module docstring).

    `choices` gives the options of fields whose options depend on the session (e.g. "your reward model" once
    one is trained); a kept value that is no longer an option goes back to the default."""

    def __init__(self, cls: type[S], prefix: str, choices: Mapping[str, Sequence[Any]] | None = None):
        self.cls, self.prefix = cls, prefix
        self.specs = options_of(cls)
        self._choices = {name: tuple(c) for name, c in (choices or {}).items()}
        self._restore()

    def key(self, name: str) -> str:
        return self.prefix + name

    def choices(self, name: str) -> tuple[Any, ...] | None:
        return self._choices.get(name, self.specs[name].choices)

    # -- values -------------------------------------------------------------------------------------------

    def _restore(self) -> None:
        """Take the URL's values the first time this session uses the form; toast each bad one."""
        restored = st.session_state.setdefault(RESTORED, set())
        if self.prefix in restored:
            return
        restored.add(self.prefix)
        kept = st.session_state.setdefault(KEPT, {})
        old_names = {new: old for old, new in RENAMED.items()}
        for name, spec in self.specs.items():
            key = self.key(name)
            url_key = key if key in st.query_params else old_names.get(key, key)
            raw = st.query_params.get(url_key)
            if raw is None:
                continue
            value, notice = parse(key, spec, raw, self.choices(name))
            kept[key] = value
            st.session_state.pop(key, None)  # a widget value from before the link must not win over it
            if url_key != key:
                del st.query_params[url_key]
            if notice:
                st.toast(notice, icon="🔗")

    def value(self, name: str) -> Any:
        """A setting's value now: its widget's, else the kept one, else the default (each checked)."""
        spec, key = self.specs[name], self.key(name)
        kept = st.session_state.setdefault(KEPT, {})
        for candidate in (st.session_state.get(key), kept.get(key)):
            if candidate is not None and _valid(spec, candidate, self.choices(name)):
                value = tuple(candidate) if isinstance(spec.default, tuple) else candidate
                break
        else:
            value = spec.default
        kept[key] = value
        return value

    def values(self) -> S:
        """The settings now, without drawing anything (e.g. another tab's settings)."""
        return self.cls(**{name: self.value(name) for name in self.specs})

    def set(self, name: str, value: Any) -> None:
        """Change a setting from outside its widget (a control drawn in the browser: ui/instant.py); a value that
        is not valid for it (wrong type, out of range, not a choice) is ignored."""
        spec = self.specs[name]
        if _numeric(spec.default) and _numeric(value):
            value = type(spec.default)(value)  # JSON numbers: 2.0 for an int setting
        if _valid(spec, value, self.choices(name)):
            st.session_state.setdefault(KEPT, {})[self.key(name)] = value
            st.session_state.pop(self.key(name), None)  # a widget value from before must not win over it

    def control(self, name: str) -> dict[str, Any]:
        """One setting as a browser control (ui/instant.py): its label, bounds or choices, help and value."""
        spec, value = self.specs[name], self.value(name)
        control = {"name": name, "key": self.key(name), "label": spec.label, "help": spec.help, "value": value}
        if spec.kind == SELECT_SLIDER:
            choices = list(self.choices(name) or ())
            return control | {"kind": "choice", "choices": choices, "labels": [spec.show(c) for c in choices]}
        integer = isinstance(spec.default, int)
        step = spec.step if spec.step is not None else (1 if integer else (spec.hi - spec.lo) / 100)
        kind = "number" if spec.kind == NUMBER else "range"
        return control | {"kind": kind, "lo": spec.lo, "hi": spec.hi, "step": step, "integer": integer}

    # -- widgets ------------------------------------------------------------------------------------------

    def widget(self, name: str, where: Any = None, **extra: Any) -> Any:
        """Draw one setting's widget in `where` (a column or container; default: here) and return its value.
        An advanced setting in presenter mode is not drawn; its value is returned all the same."""
        from ui.shell import presenter

        spec, key = self.specs[name], self.key(name)
        value = self.value(name)
        if spec.advanced and presenter():
            return value
        st.session_state[key] = list(value) if isinstance(value, tuple) else value
        where = where if where is not None else st
        common = {"key": key, "help": spec.help or None, **extra}
        choices = self.choices(name)
        kind = spec.kind
        if kind == TOGGLE:
            shown = where.toggle(spec.label, **common)
        elif kind == MULTISELECT:
            shown = tuple(where.multiselect(spec.label, choices, format_func=spec.show, **common))
        elif kind == SELECT_SLIDER:
            shown = where.select_slider(spec.label, choices, format_func=spec.show, **common)
        elif kind == SELECTBOX:
            shown = where.selectbox(spec.label, choices, format_func=spec.show, **common)
        elif kind == RADIO:
            shown = where.radio(spec.label, choices, format_func=spec.show, **common)
        elif kind == NUMBER:
            bounds = {"min_value": spec.lo, "max_value": spec.hi, "step": spec.step, "format": spec.number_format}
            shown = where.number_input(spec.label, **{k: v for k, v in bounds.items() if v is not None}, **common)
        else:
            shown = where.slider(spec.label, min_value=spec.lo, max_value=spec.hi, step=spec.step, **common)
        st.session_state[KEPT][key] = shown
        return shown

    def draw(self, names: Sequence[str] | None = None, columns: int | None = None) -> S:
        """Draw the settings (all, or `names`) side by side in one row of columns, publish them, return them."""
        names = list(self.specs) if names is None else list(names)
        shown = [n for n in names if not (self.specs[n].advanced and _presenter())]
        cells = st.columns(columns or max(1, len(shown))) if shown else []
        for n, name in enumerate(shown):
            self.widget(name, cells[n % len(cells)])
        return self.done()

    def done(self) -> S:
        """After the widgets: write every setting of the form into the URL; return the settings."""
        settings = self.values()
        for name in self.specs:
            text = to_url(getattr(settings, name))
            if st.query_params.get(self.key(name)) != text:
                st.query_params[self.key(name)] = text
        return settings


def _presenter() -> bool:
    from ui.shell import presenter

    return presenter()
