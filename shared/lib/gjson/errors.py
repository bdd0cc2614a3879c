"""Exceptions raised by :mod:`shared.lib.gjson`."""

from __future__ import annotations


class PathError(ValueError):
    """A path is malformed, unsupported, or too expensive to evaluate.

    ``message`` names the problem and the offending character position;
    ``position`` is that 0-based index into the path (0 when not applicable).
    """

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[PathError], tuple[str, int]]:
        return (PathError, (self.message, self.position))
