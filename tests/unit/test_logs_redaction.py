"""Structured logs never carry biometric payloads: bytes, arrays, long vectors are redacted."""

from __future__ import annotations

import json
import logging

import numpy as np

from services.common.logs import JsonFormatter, redact


def _format(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "msg %s", ("x",), None)
    for k, v in extra.items():
        setattr(record, k, v)
    return json.loads(JsonFormatter().format(record))


def test_redact_values() -> None:
    assert redact(b"\xff\xd8jpeg-bytes") == "<12 bytes>"
    assert redact(np.zeros((192,), dtype=np.float32)) == "<array (192,)>"
    assert redact([0.1] * 192) == "<192 items>"
    assert redact(3) == 3 and redact(0.5) == 0.5 and redact(None) is None
    assert len(str(redact("a" * 10_000))) <= 257


def test_formatter_redacts_extra_fields() -> None:
    out = _format(crop=b"\xff\xd8" * 500, embedding=[0.123456] * 192, vec=np.ones((1, 192)), camera_id="cam-1")
    assert out["msg"] == "msg x"
    assert out["crop"] == "<1000 bytes>"
    assert out["embedding"] == "<192 items>"
    assert out["vec"] == "<array (1, 192)>"
    assert out["camera_id"] == "cam-1"
    assert "0.123456" not in json.dumps(out)
