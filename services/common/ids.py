"""Identifiers that become file names (a client certificate per officer), certificate CNs, Redis keys,
audit fields and log fields: one rule, checked wherever one enters (the CLI, the services, the PKI).

An identifier is 1-128 characters of letters, digits and ``_.:@-``, not starting with ``.``: so
never a path (``../../x``), never hidden, never ``..``. A refusal names what is wrong and never
echoes the value (it may be an attacker's)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

MAX_ID_CHARS = 128
ID_PATTERN = re.compile(r"[A-Za-z0-9_@-][A-Za-z0-9_.:@-]{0,%d}" % (MAX_ID_CHARS - 1))
RULE = f"1-{MAX_ID_CHARS} characters of letters, digits and _.:@- (not starting with '.')"


class InvalidId(ValueError):
    """An identifier that breaks the rule (the message names the field, never the value)."""


def check_id(what: str, value: str) -> str:
    """``value`` when it is a valid identifier; :class:`InvalidId` naming ``what`` otherwise."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        size = len(value) if isinstance(value, str) else 0
        raise InvalidId(f"{what} must be {RULE} ({size} given)")
    return value


def cli_id(what: str) -> Callable[[str], str]:
    """An argparse ``type=`` that refuses a bad identifier with the rule (usage error, exit 2)."""

    def parse(value: str) -> str:
        try:
            return check_id(what, value)
        except InvalidId as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = what  # argparse names the type in its message
    return parse
