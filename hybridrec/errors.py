"""Exceptions that name what was wrong, so a user can fix their input."""

from __future__ import annotations


class HybridrecError(Exception):
    """Base class of every error hybridrec raises on purpose."""


class DataError(HybridrecError, ValueError):
    """Malformed input data. The message names the file, line and field where known."""

    def __init__(
        self,
        message: str,
        *,
        path: object | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        self.path, self.line, self.field = path, line, field
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class UnknownIdError(HybridrecError, KeyError):
    """An id that the dataset or fitted model does not know."""

    def __init__(self, kind: str, ids: list[str]) -> None:
        self.kind, self.ids = kind, list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:10])
        more = f" (and {len(self.ids) - 10} more)" if len(self.ids) > 10 else ""
        super().__init__(f"unknown {kind} id(s): {shown}{more}")

    def __str__(self) -> str:  # KeyError would add quotes around the whole message
        return self.args[0]


class NotFittedError(HybridrecError, RuntimeError):
    """A recommender used before ``fit`` or ``load``."""


class ModelFileError(HybridrecError, OSError):
    """A saved model folder that is missing, corrupted or does not match what loads it."""


class OutputPathError(HybridrecError, OSError):
    """An output path hybridrec will not write to: a file, a folder that is not empty and not
    one hybridrec wrote, a saved model without ``overwrite``, the current folder, or a folder
    another process is saving to. The message names the path and what to do."""


class MissingDependencyError(HybridrecError, ImportError):
    """An optional dependency is not installed; the message names the package or extra."""


class UnusedInputError(HybridrecError, ValueError):
    """A request carries input (free text, a profile) the recommender cannot read."""


class UnusedInputWarning(UserWarning):
    """A request carries input (free text, a profile) the recommender ignores."""
