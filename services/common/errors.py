"""Errors that end a command with one clear line: the cause and the fix."""

from __future__ import annotations

import logging
import uuid


class SetupError(RuntimeError):
    """A broken setup: printed as one line naming the cause and the fix, exit 2."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause} — fix: {fix}")
        self.cause = cause
        self.fix = fix

    def one_line(self) -> str:
        return f"lfr: error: {self.cause} — fix: {self.fix}"


def log_failure(logger: logging.Logger, event: str, error: BaseException, *, traceback: bool = False) -> str:
    """Log ``error`` in full under a fresh reference and return the reference. An API answers with a fixed
    message that names the reference (and what to do), never the exception's own text: that can carry file
    paths, hosts, key names or query details a caller has no business seeing."""
    reference = uuid.uuid4().hex[:12]
    logger.error(event, exc_info=error if traceback else None,
                 extra={"reference": reference, "error": f"{type(error).__name__}: {error}"})
    return reference
