"""Crypto-shredding of frames: AES-256-GCM with a data key per camera per time window.

Ingest (:class:`FrameSealer`) encrypts each frame's image with the key of its
camera's current window (``window_s``, default 60 s). The key is made at the
window's first frame and stored only in Redis, ``SET lfr:framekey:<key_id> <key>
NX EX <ttl_s + window_s>``: it expires ``ttl_s`` (the frames topic's retention)
after the last frame it can have sealed. The frame carries ``key_id`` and
``nonce`` in clear, the image as ciphertext; the associated data binds the
ciphertext to its camera, sequence number and key id, so bytes moved to another
frame do not open.

The recognizer (:class:`FrameOpener`) reads the key by id and caches it in
memory for at most one window; a key that is gone means the frame is
unreadable: dead letter ``KEY_EXPIRED`` without the payload.

Once the key has expired, every copy of those frames (log segments not yet
deleted, replicas, disk images, backups, a DLQ copy) is ciphertext without a key.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field

from lfr.v1 import common_pb2, frames_pb2

from services.common.settings import Section

KEY_PREFIX = "lfr:framekey:"
PROTECTION = common_pb2.PAYLOAD_PROTECTION_AES256_GCM_EPHEMERAL_KEY


class FrameKeyOptions(Section):
    enabled: bool = Field(True, description="encrypt frame images (AES-256-GCM, keys only in Redis)")
    window_s: float = Field(60.0, ge=1, le=3600, description="one data key per camera per this many seconds")
    ttl_s: float = Field(
        60.0, ge=1, le=86_400,
        description="key lifetime after the window's end: the frames topic's retention (lfr.frames.v1: 60 s)",
    )


class KeyGone(LookupError):
    """The frame's key is not in Redis any more: the frame is shredded."""


def redis_key(key_id: str) -> str:
    return KEY_PREFIX + key_id


def associated_data(frame: frames_pb2.Frame) -> bytes:
    return f"lfr.frame.v1|{frame.camera_id}|{frame.seq}|{frame.key_id}".encode()


class FrameSealer:
    """Ingest side: the current window's key per camera (made on demand), sealing in place."""

    def __init__(self, redis: Any, options: FrameKeyOptions, clock: Any = time.time) -> None:
        self.redis = redis
        self.options = options
        self._clock = clock
        self._keys: dict[str, tuple[int, str, bytes]] = {}  # camera -> (window, key_id, key)

    async def _key(self, camera_id: str) -> tuple[str, bytes]:
        window = int(self._clock() // self.options.window_s)
        cached = self._keys.get(camera_id)
        if cached is not None and cached[0] == window:
            return cached[1], cached[2]
        key = AESGCM.generate_key(bit_length=256)
        key_id = f"{camera_id}.{window}.{uuid.uuid4().hex[:16]}"
        ttl = int(self.options.ttl_s + self.options.window_s + 0.999)
        if not await self.redis.set(redis_key(key_id), key, nx=True, ex=ttl):
            raise RuntimeError(f"frame key id collision {key_id}")
        self._keys[camera_id] = (window, key_id, key)
        return key_id, key

    async def seal(self, frame: frames_pb2.Frame) -> None:
        """Encrypt ``frame.image`` in place (sets protection, key_id, nonce)."""
        key_id, key = await self._key(frame.camera_id)
        frame.key_id = key_id
        frame.nonce = os.urandom(12)
        frame.protection = PROTECTION
        frame.image = AESGCM(key).encrypt(frame.nonce, frame.image, associated_data(frame))


class FrameOpener:
    """Recognizer side: fetch the key by id (cached for at most one window) and decrypt."""

    def __init__(self, redis: Any, max_cache_s: float = 60.0, clock: Any = time.monotonic) -> None:
        self.redis = redis
        self.max_cache_s = max_cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, bytes]] = {}

    async def key(self, key_id: str) -> bytes:
        now = self._clock()
        hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.max_cache_s:
            return hit[1]
        key = await self.redis.get(redis_key(key_id))
        if key is None:
            self._cache.pop(key_id, None)
            raise KeyGone(key_id)
        if len(self._cache) > 1024:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.max_cache_s}
        self._cache[key_id] = (now, bytes(key))
        return bytes(key)

    async def open(self, frame: frames_pb2.Frame) -> bytes:
        """The plaintext image; KeyGone when the key expired, InvalidTag when the bytes were altered."""
        if frame.protection in (common_pb2.PAYLOAD_PROTECTION_UNSPECIFIED, common_pb2.PAYLOAD_PROTECTION_PLAINTEXT):
            return bytes(frame.image)
        key = await self.key(frame.key_id)
        return AESGCM(key).decrypt(frame.nonce, frame.image, associated_data(frame))
