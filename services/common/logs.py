"""Structured logging: one JSON object per line for services, plain for the CLI.

Privacy: log records carry ids, scores and counts only. Never pass frames,
crops or embeddings to a logger; ``redact`` guards the extra fields."""

from __future__ import annotations

import json
import logging
import sys
import time

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_MAX_FIELD = 256  # longer values are dropped: nothing biometric fits in a log line


def redact(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"<array {getattr(value, 'shape')}>"
    if isinstance(value, (list, tuple)) and len(value) > 16:
        return f"<{len(value)} items>"
    s = value if isinstance(value, (int, float, bool)) or value is None else str(value)
    if isinstance(s, str) and len(s) > _MAX_FIELD:
        return s[:_MAX_FIELD] + "…"
    return s


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                out[k] = redact(v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: int = logging.INFO, json_format: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "urllib3", "grpc"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
