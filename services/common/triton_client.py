"""An asyncio client for Triton over gRPC (``tritonclient.grpc.aio``).

- :meth:`TritonClient.infer` runs one model on named numpy arrays (batch first)
  and returns all its outputs. Concurrent calls to the same model with the same
  per-item shapes are merged by a micro-batcher into one request of up to
  ``max_batch`` rows, waiting at most ``max_delay_ms`` for company, and each
  caller gets back exactly its own rows. So many faces become one embedder call.
- Errors are typed: :class:`TritonUnavailable` (server unreachable / timed out,
  after ``retries``) and :class:`TritonInferenceError` (this model and this
  request failed: unknown model, bad input, the model's own error). Nothing
  else escapes, so a failed request never crashes a service.

It implements :class:`services.common.runner.ModelRunner`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, Awaitable, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("lfr.triton_client")


class TritonClientSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field("127.0.0.1:8001", min_length=1, description="Triton gRPC endpoint host:port")
    timeout_s: float = Field(10.0, gt=0, le=300, description="deadline of one gRPC inference request")
    ssl: bool = Field(False, description="use TLS to Triton")
    max_batch: int = Field(32, ge=1, le=1024,
                           description="most rows the micro-batcher merges into one request "
                                       "(keep <= the model's max_batch_size)")
    max_delay_ms: float = Field(2.0, ge=0, le=1000,
                                description="longest a call waits for others to join its batch; 0 disables merging")
    retries: int = Field(2, ge=0, le=10, description="retries when the server is unreachable or times out")
    retry_backoff_s: float = Field(0.1, ge=0, le=10, description="first retry delay; doubles each retry")

    @classmethod
    def from_section(cls, section: BaseModel, **overrides: Any) -> "TritonClientSettings":
        """From a service's ``triton`` settings section (services.common.settings.TritonSettings):
        the fields both know are taken from it, the batching ones from ``overrides`` or defaults."""
        known = {k: v for k, v in section.model_dump().items() if k in cls.model_fields}
        return cls.model_validate({**known, **overrides})


class TritonError(Exception):
    """Base of the client's errors."""


class TritonUnavailable(TritonError):
    """The server could not be reached (or did not answer in time) after the retries."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Triton at {url} is unavailable: {reason}")
        self.url = url
        self.reason = reason


class TritonInferenceError(TritonError):
    """This model failed this request: unknown or unready model, bad input, model error."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"Triton model {model!r} failed: {reason}")
        self.model = model
        self.reason = reason


# gRPC status codes that mean "the server, not the request": retry
_TRANSIENT = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED"}


@dataclasses.dataclass
class ClientCounters:
    """What the client did: calls by callers, requests sent to Triton, rows sent."""

    calls: int = 0
    requests: int = 0
    rows: int = 0
    errors: int = 0


@dataclasses.dataclass
class _Pending:
    inputs: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]


BatchKey = tuple[str, tuple[tuple[str, str, tuple[int, ...]], ...]]


def _rows(model: str, inputs: dict[str, np.ndarray]) -> int:
    if not inputs:
        raise TritonInferenceError(model, "no inputs")
    rows = set()
    for name, arr in inputs.items():
        if not isinstance(arr, np.ndarray) or arr.dtype == object or arr.ndim == 0:
            raise TritonInferenceError(model, f"input {name!r} must be a numeric numpy array with a batch dim")
        rows.add(arr.shape[0])
    if len(rows) != 1:
        raise TritonInferenceError(model, f"inputs disagree on the batch size: {sorted(rows)}")
    return rows.pop()


class MicroBatcher:
    """Merges concurrent calls (same model, same per-item shapes and dtypes) into
    one call of ``send`` of up to ``max_batch`` rows. While a batch of that kind is
    in flight, new calls wait at most ``max_delay_s`` (or until ``max_batch`` rows
    are queued); when none is, they go at the next loop turn, so a lone call pays
    no delay."""

    def __init__(self, send: Callable[[str, dict[str, np.ndarray]], Awaitable[dict[str, np.ndarray]]],
                 max_batch: int, max_delay_s: float) -> None:
        self._send = send
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._queues: dict[BatchKey, list[_Pending]] = {}
        self._full: dict[BatchKey, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: dict[BatchKey, int] = {}

    async def submit(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = _rows(model, inputs)
        if rows > self.max_batch:  # too big for one request: chunks of max_batch, in parallel
            chunks = [{n: a[i:i + self.max_batch] for n, a in inputs.items()}
                      for i in range(0, rows, self.max_batch)]
            parts = await asyncio.gather(*(self._send(model, c) for c in chunks))
            return {n: np.concatenate([p[n] for p in parts], axis=0) for n in parts[0]}
        if rows == self.max_batch or self.max_delay_s <= 0:
            return await self._send(model, inputs)
        key: BatchKey = (model, tuple(sorted((n, a.dtype.str, tuple(a.shape[1:])) for n, a in inputs.items())))
        fut: asyncio.Future[dict[str, np.ndarray]] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = []
            self._full[key] = asyncio.Event()
            self._spawn(self._collect(key))
        queue.append(_Pending(inputs, rows, fut))
        if sum(p.rows for p in queue) >= self.max_batch:
            self._full[key].set()
        return await fut

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _collect(self, key: BatchKey) -> None:
        if self._inflight.get(key, 0) == 0:
            # idle model: no waiting, only one loop turn so that calls made together
            # (asyncio.gather) still share the request; under load, wait for company
            await asyncio.sleep(0)
        else:
            try:
                await asyncio.wait_for(self._full[key].wait(), timeout=self.max_delay_s)
            except TimeoutError:
                pass
        queue = self._queues.pop(key)
        self._full.pop(key)
        batch: list[_Pending] = []
        total = 0
        while queue and total + queue[0].rows <= self.max_batch:
            total += queue[0].rows
            batch.append(queue.pop(0))
        if queue:  # more than fits: they start the next batch at once
            self._queues[key] = queue
            self._full[key] = asyncio.Event()
            if sum(p.rows for p in queue) >= self.max_batch:
                self._full[key].set()
            self._spawn(self._collect(key))
        self._inflight[key] = self._inflight.get(key, 0) + 1
        try:
            await self._run(key[0], batch)
        finally:
            self._inflight[key] -= 1
            if not self._inflight[key]:
                del self._inflight[key]

    async def _run(self, model: str, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                results = [await self._send(model, batch[0].inputs)]
            else:
                merged = {n: np.concatenate([p.inputs[n] for p in batch], axis=0) for n in batch[0].inputs}
                out = await self._send(model, merged)
                total = sum(p.rows for p in batch)
                for name, arr in out.items():
                    if arr.ndim == 0 or arr.shape[0] != total:
                        raise TritonInferenceError(model, f"output {name!r} has {arr.shape[:1]} rows, sent {total}")
                bounds = np.cumsum([0] + [p.rows for p in batch])
                results = [{n: a[lo:hi] for n, a in out.items()} for lo, hi in zip(bounds[:-1], bounds[1:])]
        except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        for p, res in zip(batch, results):
            if not p.future.done():
                p.future.set_result(res)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class TritonClient:
    """``async with TritonClient(settings) as client: out = await client.infer(model, inputs)``."""

    def __init__(self, settings: TritonClientSettings | None = None) -> None:
        self.settings = settings or TritonClientSettings()
        self.counters: dict[str, ClientCounters] = {}
        self._client: Any = None
        self._outputs: dict[str, list[str]] = {}
        self._batcher = MicroBatcher(self._infer_once_with_retries, self.settings.max_batch,
                                     self.settings.max_delay_ms / 1000.0)

    # -- lifecycle -------------------------------------------------------------
    def _grpc(self) -> Any:
        if self._client is None:
            import tritonclient.grpc.aio as grpcclient  # heavy: imported on first use

            self._client = grpcclient.InferenceServerClient(self.settings.url, ssl=self.settings.ssl)
        return self._client

    async def close(self) -> None:
        await self._batcher.close()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> "TritonClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- readiness -------------------------------------------------------------
    async def server_ready(self) -> bool:
        try:
            return bool(await self._call(None, lambda c: c.is_server_ready(client_timeout=self.settings.timeout_s)))
        except TritonError:
            return False

    async def model_ready(self, model: str) -> bool:
        """True when the server has ``model`` loaded and ready; raises TritonUnavailable when unreachable."""
        try:
            return bool(await self._call(model,
                                         lambda c: c.is_model_ready(model, client_timeout=self.settings.timeout_s)))
        except TritonInferenceError:
            return False

    async def wait_ready(self, models: list[str], timeout_s: float = 60.0) -> None:
        """Wait until every model is ready; TritonUnavailable / TritonInferenceError on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pending = list(models)
        last: TritonError | None = None
        while True:
            try:
                pending = [m for m in pending if not await self.model_ready(m)]
                last = None
            except TritonUnavailable as e:
                last = e
            if not pending and last is None:
                return
            if loop.time() >= deadline:
                if last is not None:
                    raise last
                raise TritonInferenceError(pending[0],
                                           f"not ready after {timeout_s:.0f} s (models not ready: {pending})")
            await asyncio.sleep(0.5)

    # -- inference -------------------------------------------------------------
    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``model``; concurrent calls are micro-batched. Raises TritonError subclasses only."""
        self._counter(model).calls += 1
        return await self._batcher.submit(model, inputs)

    async def infer_unbatched(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request for exactly these inputs (no merging with other calls)."""
        self._counter(model).calls += 1
        _rows(model, inputs)
        return await self._infer_once_with_retries(model, inputs)

    def _counter(self, model: str) -> ClientCounters:
        return self.counters.setdefault(model, ClientCounters())

    async def _output_names(self, model: str) -> list[str]:
        names = self._outputs.get(model)
        if names is None:
            meta = await self._call(model, lambda c: c.get_model_metadata(
                model, as_json=True, client_timeout=self.settings.timeout_s))
            names = self._outputs[model] = [o["name"] for o in meta.get("outputs", [])]
        return names

    async def _infer_once_with_retries(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tritonclient.grpc.aio as grpcclient
        from tritonclient.utils import np_to_triton_dtype

        counter = self._counter(model)
        try:
            names = await self._output_names(model)
            tensors = []
            for name, arr in inputs.items():
                try:
                    dtype = np_to_triton_dtype(arr.dtype)
                except Exception as e:  # noqa: BLE001 - tritonclient raises bare Exception here
                    raise TritonInferenceError(model, f"input {name!r}: unsupported dtype {arr.dtype}") from e
                if dtype is None:
                    raise TritonInferenceError(model, f"input {name!r}: unsupported dtype {arr.dtype}")
                t = grpcclient.InferInput(name, list(arr.shape), dtype)
                t.set_data_from_numpy(np.ascontiguousarray(arr))
                tensors.append(t)
            wanted = [grpcclient.InferRequestedOutput(n) for n in names]
            counter.requests += 1
            counter.rows += _rows(model, inputs)
            result = await self._call(model, lambda c: c.infer(
                model, tensors, outputs=wanted, client_timeout=self.settings.timeout_s))
            out = {}
            for n in names:
                arr = result.as_numpy(n)
                if arr is None:
                    raise TritonInferenceError(model, f"the answer lacks output {n!r}")
                out[n] = arr
            return out
        except TritonError:
            counter.errors += 1
            raise

    async def _call(self, model: str | None, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """One gRPC call with retries on transient failures; maps errors to TritonError."""
        from tritonclient.utils import InferenceServerException

        delay = self.settings.retry_backoff_s
        for attempt in range(self.settings.retries + 1):
            try:
                return await fn(self._grpc())
            except InferenceServerException as e:
                status, msg = str(e.status() or ""), str(e.message() or e)
                transient = status in _TRANSIENT
                if not transient:
                    raise TritonInferenceError(model or "<server>", f"{msg} ({status or 'no status'})") from e
                if attempt == self.settings.retries:
                    raise TritonUnavailable(self.settings.url, f"{msg} ({status})") from e
                log.warning("triton call failed, retrying", extra={"model": model, "status": status,
                                                                    "attempt": attempt + 1})
            except (OSError, asyncio.TimeoutError) as e:
                if attempt == self.settings.retries:
                    raise TritonUnavailable(self.settings.url, repr(e)) from e
            await asyncio.sleep(delay)
            delay *= 2
        raise TritonUnavailable(self.settings.url, "no attempt made")  # unreachable: retries >= 0
