"""Errors that end a command with one clear line: the cause and the fix."""

from __future__ import annotations


class SetupError(RuntimeError):
    """A broken setup: printed as one line naming the cause and the fix, exit 2."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause} — fix: {fix}")
        self.cause = cause
        self.fix = fix

    def one_line(self) -> str:
        return f"lfr: error: {self.cause} — fix: {self.fix}"
