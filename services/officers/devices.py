"""Delivery of alerts to officers' devices: ``DeviceService.Subscribe``.

A device's stream sends, in routing order, every alert in the device's inbox
(``lfr:inbox:<device>``) that it has not been sent yet. Before writing an alert
to the stream the server takes the delivery idempotency key
``SET lfr:delivered:<device>:<alert> NX``; if the key exists the alert was
already sent to this device (by this or another replica, before a restart, or
the alert was redelivered from Kafka) and is skipped; if the write fails the
key is released so the alert goes out when the device reconnects. So a device
that reconnects gets the alerts routed to it meanwhile, and never one twice.

Streams wake up on a Redis notification (``lfr:notify:<device>``, published
by whichever replica routed the alert) and poll their inbox every
``stream_poll_s`` in case a notification was missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from lfr.v1 import officers_pb2

from services.officers.alert_store import ADJUDICATED, NOTIFY_PREFIX, AlertRecord, AlertStore

log = logging.getLogger(__name__)


def device_alert(rec: AlertRecord, device_id: str, alert_bytes: bytes) -> officers_pb2.DeviceAlert:
    msg = officers_pb2.DeviceAlert(
        delivery_id=f"{device_id}:{rec.alert_id}",
        escalation_level=max(rec.level, 0),
        ack_deadline_unix_ns=rec.deadline_ms * 1_000_000,
        two_person_confirmation=rec.two_person,
        state=rec.state,
        retention_until_unix_ns=rec.retention_ms * 1_000_000,
    )
    msg.alert.ParseFromString(alert_bytes)
    return msg


class DeviceHub:
    """Wakes the streams of this process when their device's inbox changes."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    @property
    def connected(self) -> int:
        return sum(len(v) for v in self._waiters.values())

    def register(self, device_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[device_id].add(event)
        return event

    def unregister(self, device_id: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(device_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[device_id]

    def notify(self, device_id: str) -> None:
        for event in self._waiters.get(device_id, ()):
            event.set()

    async def listen(self, redis: Any, stop: asyncio.Event) -> None:
        """Relay Redis notifications (other replicas' routing) to local streams."""
        delay = 0.5
        while not stop.is_set():
            pubsub = redis.pubsub()
            try:
                await pubsub.psubscribe(NOTIFY_PREFIX + "*")
                delay = 0.5
                while not stop.is_set():
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if msg and msg.get("channel"):
                        channel = msg["channel"]
                        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                        self.notify(channel[len(NOTIFY_PREFIX):])
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                log.warning("device notifications interrupted; streams poll meanwhile", extra={"error": repr(e)})
            except Exception as e:  # redis-py's ConnectionError is not OSError's
                log.warning("device notifications interrupted; streams poll meanwhile", extra={"error": repr(e)})
            finally:
                try:
                    await pubsub.aclose()
                except Exception as e:  # a broken connection may fail to close
                    log.debug("pubsub close failed", extra={"error": repr(e)})
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 5.0)


async def stream_device(store: AlertStore, hub: DeviceHub, device_id: str, context: Any, stop: asyncio.Event,
                        *, poll_s: float, delivery_ttl_ms: int) -> int:
    """Write the device's undelivered alerts to ``context`` until the call ends; returns how many."""
    event = hub.register(device_id)
    sent = 0
    try:
        while not stop.is_set():
            event.clear()
            for alert_id in await store.inbox(device_id):
                rec = await store.get(alert_id)
                if rec is None:  # purged
                    await store.drop_from_inbox(device_id, alert_id)
                    continue
                if rec.state == ADJUDICATED:
                    continue
                if not await store.claim_delivery(device_id, alert_id, delivery_ttl_ms):
                    continue  # sent to this device before
                data = await store.alert_bytes(alert_id)
                if data is None:
                    continue
                try:
                    await context.write(device_alert(rec, device_id, data))
                except BaseException:
                    await asyncio.shield(store.release_delivery(device_id, alert_id))
                    raise
                sent += 1
                log.info("alert delivered", extra={"alert_id": alert_id, "device_id": device_id,
                                                   "level": rec.level})
            waiter = asyncio.ensure_future(event.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
    finally:
        hub.unregister(device_id, event)
    return sent
