"""Prompt templates: loaded by name from the package data, filled with checked fields, and every
template documented in prompts/README.md."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from hybridrec import templates
from hybridrec.templates import (
    PromptError,
    available_prompts,
    load_prompt,
    render,
    template_fields,
)

REPO = Path(__file__).resolve().parents[1]
PROMPTS = REPO / "prompts"


def _readme_rows() -> dict[str, str]:
    """Template name -> its row in the README's table."""
    rows = {}
    for line in (PROMPTS / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `([a-z0-9_]+)` \|", line)
        if match:
            rows[match.group(1)] = line
    return rows


# --------------------------------------------------------------------------- loading
def test_available_prompts_are_the_files_of_the_folder() -> None:
    files = sorted(p.stem for p in PROMPTS.glob("*.txt"))
    assert available_prompts() == files
    assert "cold_start_preference" in files


def test_templates_come_from_the_package_data() -> None:
    """``hybridrec.prompts`` is the top-level prompts/ folder (editable install) or its copy."""
    packaged = resources.files("hybridrec.prompts") / "cold_start_preference.txt"
    assert packaged.read_text(encoding="utf-8") == (
        PROMPTS / "cold_start_preference.txt"
    ).read_text(encoding="utf-8")


def test_load_prompt_drops_only_the_final_newline() -> None:
    text = load_prompt("cold_start_preference")
    raw = (PROMPTS / "cold_start_preference.txt").read_text(encoding="utf-8")
    assert raw.endswith("\n") and text == raw[:-1]


@pytest.mark.parametrize(
    "name", ["nope", "../pyproject", "cold_start_preference.txt", "README", ""]
)
def test_unknown_or_bad_names(name: str) -> None:
    with pytest.raises(PromptError, match="known: .*cold_start_preference"):
        load_prompt(name)


def test_every_template_is_documented_with_its_fields() -> None:
    rows = _readme_rows()
    assert sorted(rows) == available_prompts()
    for name, row in rows.items():
        for field in template_fields(name):  # also: every shipped template parses
            assert f"`{{{field}}}`" in row, f"README does not describe field {field} of {name}"


# --------------------------------------------------------------------------- rendering
def test_cold_start_preference() -> None:
    assert template_fields("cold_start_preference") == ["genres", "tags"]
    text = render("cold_start_preference", genres="sci-fi and comedy", tags="time travel, robots")
    assert text == (
        "I enjoy sci-fi and comedy.\nThings I like: time travel, robots."
    )


@pytest.mark.parametrize("empty", ["", "   ", "\t"])
def test_an_empty_field_leaves_its_line_out(empty: str) -> None:
    assert render("cold_start_preference", genres="drama", tags=empty) == "I enjoy drama."
    assert render("cold_start_preference", genres=empty, tags=empty) == ""


def test_values_are_formatted() -> None:
    assert render("cold_start_preference", genres=42, tags=["a"]).endswith("like: ['a'].")


def test_a_missing_field_is_named() -> None:
    with pytest.raises(PromptError) as info:
        render("cold_start_preference", genres="drama")
    assert str(info.value) == (
        "template 'cold_start_preference': missing field 'tags' (it uses genres, tags)"
    )


def test_an_unknown_field_is_named() -> None:
    with pytest.raises(PromptError) as info:
        render("cold_start_preference", genres="drama", tags="", tag_clause="x", mood="y")
    assert str(info.value) == (
        "template 'cold_start_preference': unknown fields 'tag_clause', 'mood' "
        "(it uses genres, tags)"
    )


def test_prompt_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        render("nope")


# --------------------------------------------------------------------------- the format
def _with_template(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(templates, "_read", lambda name: text if name == "t" else None)


def test_lines_without_fields_stay_and_braces_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_template(monkeypatch, "Header {{literal}}\n\nScore: {score:.2f}\nUser: {user.upper}")
    assert template_fields("t") == ["score", "user"]
    assert render("t", score=0.5, user="ann").startswith("Header {literal}\n\nScore: 0.50\n")


@pytest.mark.parametrize("text", ["Rank {} items", "Rank {0} items"])
def test_positional_fields_are_refused(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    _with_template(monkeypatch, text)
    with pytest.raises(PromptError, match="template 't': positional field"):
        render("t")


def test_unbalanced_braces_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_template(monkeypatch, "Rank {items")
    with pytest.raises(PromptError, match="template 't': .* in line 'Rank {items'"):
        template_fields("t")
