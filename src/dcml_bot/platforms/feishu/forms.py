"""Feishu card forms: a text box (a note on a paper) as card JSON 2.0, its submission back."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

from dcml_bot.core.reply import InputBlock

# Feishu's card input holds 1,000 characters at most, its placeholder 100 (input.md).
MAX_INPUT = 1000
MAX_PLACEHOLDER = 100
MAX_LABEL = 100
# A text box is a card form. Its submit button's callback carries the form's values and the
# button's name, not a ``value`` (larksuite's form-submit fixtures): the name says which box.
FORM_NAME = "dcml_form"
FORM_INPUT = "text"
_FORM_BUTTON = re.compile(r"dcml_(?P<action>[a-z]{1,20})_(?P<ref>[0-9a-f]{20})")
# The documented properties of the form container and the input component (card JSON 2.0).
FORM_KEYS: dict[str, frozenset[str]] = {
    "form": frozenset(
        {
            "tag",
            "element_id",
            "margin",
            "padding",
            "name",
            "elements",
            "direction",
            "horizontal_spacing",
            "vertical_spacing",
            "horizontal_align",
            "vertical_align",
        }
    ),
    "input": frozenset(
        {
            "tag",
            "element_id",
            "margin",
            "name",
            "required",
            "disabled",
            "disabled_tips",
            "placeholder",
            "default_value",
            "width",
            "max_length",
            "input_type",
            "show_icon",
            "rows",
            "auto_resize",
            "max_rows",
            "label",
            "label_position",
            "value",
            "confirm",
            "behaviors",
        }
    ),
}


def form_ref(value: str) -> str:
    """A short hexadecimal stand-in for a box's value, safe in a component's ``name``."""
    return hashlib.blake2b(value.encode("utf-8"), digest_size=10).hexdigest()


def form_button_name(action: str, value: str) -> str:
    """The ``name`` of a text box's submit button: ``dcml_<action>_<form_ref(value)>``."""
    return f"dcml_{action}_{form_ref(value)}"


def form_of(name: object, form_value: object) -> tuple[str, str, str] | None:
    """``(action, form_ref, text)`` of a form submission's callback; None if it is not ours."""
    if not isinstance(name, str) or not isinstance(form_value, dict):
        return None
    match = _FORM_BUTTON.fullmatch(name)
    typed = form_value.get(FORM_INPUT, "")
    if match is None or not isinstance(typed, str):
        return None
    return match["action"], match["ref"], typed


def _plain(text: str, cap: int) -> dict[str, str]:
    text = " ".join(text.split())
    if len(text) > cap:
        text = text[: cap - 1].rstrip() + "…"
    return {"tag": "plain_text", "content": text}


def render_form(block: InputBlock) -> dict[str, Any]:
    """A text box as a card form: a multi-line input and its submit button."""
    text_input = {
        "tag": "input",
        "name": FORM_INPUT,
        "input_type": "multiline_text",
        "rows": 3,
        "width": "fill",
        "required": True,
        "max_length": min(block.max_length, MAX_INPUT),
        "label": _plain(block.prompt, MAX_LABEL),
        "placeholder": _plain(block.placeholder, MAX_PLACEHOLDER),
    }
    submit = {
        "tag": "button",
        "name": form_button_name(block.action, block.value),
        "form_action_type": "submit",
        "type": "primary",
        "text": _plain(block.submit, MAX_LABEL),
    }
    return {"tag": "form", "name": FORM_NAME, "elements": [text_input, submit]}


def _nested(elements: object) -> Iterator[dict[str, Any]]:
    for element in elements if isinstance(elements, list) else []:
        if isinstance(element, dict):
            yield element
            yield from _nested(element.get("elements"))
            yield from _nested(element.get("columns"))


def form_problems(body: list[Any]) -> list[str]:
    """What Feishu would refuse in a card's forms: a form below the root, names missing or
    repeated, no submit button, inputs over Feishu's limits."""
    problems: list[str] = []
    names = [e["name"] for e in _nested(body) if isinstance(e.get("name"), str)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"component names repeated in the card: {', '.join(repeated)}")
    roots = [e for e in body if isinstance(e, dict) and e.get("tag") == "form"]
    every = [e for e in _nested(body) if e.get("tag") == "form"]
    if len(every) > len(roots):
        problems.append("a form is nested in another component (forms go at the card's root)")
    for form in roots:
        inside = list(_nested(form.get("elements")))
        if not form.get("name") or any(
            e.get("tag") in ("input", "button") and not e.get("name") for e in inside
        ):
            problems.append("a form, or a component in it, has no name")
        submits = [e for e in inside if e.get("form_action_type") == "submit"]
        if not submits or any(form_of(e.get("name"), {}) is None for e in submits):
            problems.append("a form has no submit button named dcml_<action>_<ref>")
        for field in (e for e in inside if e.get("tag") == "input"):
            length = field.get("max_length", MAX_INPUT)
            placeholder = (field.get("placeholder") or {}).get("content", "")
            if not isinstance(length, int) or not 1 <= length <= MAX_INPUT:
                problems.append(f"an input's max_length is {length!r}, not 1 to {MAX_INPUT}")
            if len(placeholder) > MAX_PLACEHOLDER:
                problems.append(f"an input's placeholder is over {MAX_PLACEHOLDER} characters")
    loose = [e for e in _nested(body) if "form_action_type" in e]
    if len(loose) > sum(
        1 for f in roots for e in _nested(f.get("elements")) if "form_action_type" in e
    ):
        problems.append("a form button is outside a form")
    return problems
