"""Prompt and text templates, loaded by name from the package data ``hybridrec.prompts``.

The templates are files in the repository's top-level ``prompts/`` folder, one ``<name>.txt``
per template, shipped in the wheel as ``hybridrec/prompts/`` (see ``prompts/README.md`` for
each template and its fields). They are read with :mod:`importlib.resources`, so they are found
in a wheel, a zip and an editable install alike.

A template is text with :meth:`str.format` fields (``{genres}``). :func:`render` fills one
and checks its fields: every field the template uses must be given, and no other. One rule
beyond ``str.format`` keeps optional parts out of Python: a line whose fields are all given
empty values is left out.
"""

from __future__ import annotations

import re
import string
from functools import cache
from importlib import resources
from typing import Any

from hybridrec.errors import HybridrecError

PACKAGE = "hybridrec.prompts"
"""The package whose data files are the templates."""

SUFFIX = ".txt"
_NAME = re.compile(r"[a-z0-9_]+")


class PromptError(HybridrecError, ValueError):
    """An unknown template, a template that cannot be parsed, or fields that do not fit it."""


def available_prompts() -> list[str]:
    """The names of the templates, sorted.

    Example:
        >>> "cold_start_preference" in available_prompts()
        True
    """
    return sorted(
        entry.name[: -len(SUFFIX)]
        for entry in resources.files(PACKAGE).iterdir()
        if entry.name.endswith(SUFFIX) and entry.is_file()
    )


def load_prompt(name: str) -> str:
    """The text of a template, as in its file without the final newline.

    Args:
        name: the template's name: its file name without ``.txt``.

    Raises:
        PromptError: no template of that name (the message lists the known ones).

    Example:
        >>> print(load_prompt("cold_start_preference"))
        I enjoy {genres}.
        Things I like: {tags}.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise PromptError(
            f"not a template name: {name!r} (names are lower case letters, digits and '_'; "
            f"known: {', '.join(available_prompts())})"
        )
    text = _read(name)
    if text is None:
        raise PromptError(f"no template {name!r}; known: {', '.join(available_prompts())}")
    return text


@cache
def _read(name: str) -> str | None:
    """A template's text without the final newline (read once per process), or None."""
    resource = resources.files(PACKAGE).joinpath(name + SUFFIX)
    if not resource.is_file():
        return None
    text = resource.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def template_fields(name: str) -> list[str]:
    """The fields a template uses, in order of first use.

    Raises:
        PromptError: no such template, a positional field (``{}``, ``{0}``) or bad braces.

    Example:
        >>> template_fields("cold_start_preference")
        ['genres', 'tags']
    """
    out: dict[str, None] = {}
    for line in load_prompt(name).splitlines():
        out.update(dict.fromkeys(_line_fields(name, line)))
    return list(out)


def _line_fields(name: str, line: str) -> list[str]:
    """The fields of one line of template ``name`` (the part before ``.`` or ``[``)."""
    try:
        parsed = list(string.Formatter().parse(line))
    except ValueError as err:  # a single '{' or '}'
        raise PromptError(f"template {name!r}: {err} in line {line!r}") from None
    found = []
    for _literal, field, _spec, _conversion in parsed:
        if field is None:
            continue
        base = re.split(r"[.\[]", field, maxsplit=1)[0]
        if not base or base.isdigit():
            raise PromptError(
                f"template {name!r}: positional field {{{field}}} in line {line!r}; "
                "templates use named fields"
            )
        found.append(base)
    return found


def render(name: str, /, **fields: Any) -> str:
    """Fill template ``name`` with ``fields``.

    Every field the template uses must be given, and only those. A line whose fields are all
    given empty values (``""`` or only whitespace) is left out; lines without fields stay.
    Trailing whitespace is removed from the result.

    Args:
        name: the template's name (see :func:`available_prompts`).
        **fields: the values, formatted with :meth:`str.format`.

    Raises:
        PromptError: no such template, a field missing or a field the template does not use
            (the message names the template and the fields).

    Example:
        >>> render("cold_start_preference", genres="sci-fi and comedy", tags="time travel")
        'I enjoy sci-fi and comedy.\\nThings I like: time travel.'
        >>> render("cold_start_preference", genres="drama", tags="")
        'I enjoy drama.'
        >>> render("cold_start_preference", genres="drama")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hybridrec.templates.PromptError: template 'cold_start_preference': missing field 'tags' ...
    """
    wanted = template_fields(name)
    missing = [f for f in wanted if f not in fields]
    unknown = [f for f in fields if f not in wanted]
    problems = []
    if missing:
        problems.append(f"missing field{'s' if len(missing) > 1 else ''} {_names(missing)}")
    if unknown:
        problems.append(f"unknown field{'s' if len(unknown) > 1 else ''} {_names(unknown)}")
    if problems:
        raise PromptError(
            f"template {name!r}: {'; '.join(problems)} (it uses {', '.join(wanted) or 'none'})"
        )
    lines = []
    for line in load_prompt(name).splitlines():
        used = _line_fields(name, line)
        if used and all(not str(fields[f]).strip() for f in used):
            continue
        try:
            lines.append(line.format(**fields))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
            raise PromptError(f"template {name!r}: cannot fill line {line!r}: {err}") from err
    return "\n".join(lines).rstrip()


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
