"""Sealing biometric payloads with ephemeral keys that live only in Redis.

The recognizer seals each face's embedding and crop with a fresh AES-256-GCM
key and stores the key in Redis with a TTL; the matcher opens it, decides, and
deletes the key at once for a non-match. Deleting the key crypto-shreds every
copy of the ciphertext (broker log, replicas, DLQ), so "deleted at once" holds
even while Kafka's retention has not yet removed the bytes. See docs/design.md.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lfr.v1 import common_pb2

KEY_PREFIX = "lfr:obs:"


class KeyGone(LookupError):
    """The data key has been deleted or has expired: the payload is shredded."""


@dataclass(frozen=True)
class SealedPayload:
    sealed: common_pb2.Sealed
    key: bytes  # the data key: goes to Redis, never to Kafka or a log


def seal(plaintext: bytes, associated: str) -> SealedPayload:
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, plaintext, associated.encode())
    return SealedPayload(
        sealed=common_pb2.Sealed(
            ciphertext=ct,
            protection=common_pb2.PAYLOAD_PROTECTION_AES256_GCM_EPHEMERAL_KEY,
            key_id=uuid.uuid4().hex,
            nonce=nonce,
        ),
        key=key,
    )


def open_sealed(sealed: common_pb2.Sealed, key: bytes, associated: str) -> bytes:
    """Decrypt; raises cryptography's InvalidTag when the bytes or the id don't match."""
    return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, associated.encode())


def redis_key(key_id: str) -> str:
    return KEY_PREFIX + key_id
