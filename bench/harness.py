"""What every pipeline benchmark does before it streams: check the local stack
is healthy, and create a private set of topics (copies of the real topics'
configs under `lfr.<kind>.<tag>.*`) so a run never touches the pipeline's own."""

from __future__ import annotations

import asyncio
import random
import string

BOOTSTRAP = "127.0.0.1:9092"


async def require_healthy_stack() -> None:
    from services.common.errors import SetupError
    from services.stack import manager

    health = await asyncio.to_thread(manager.status, manager.load_components())
    down = [f"{h.name}: {h.detail}" for h in health if not h.healthy]
    if down:
        raise SetupError("the local stack is not healthy (" + "; ".join(down) + ")", "run `lfr stack up`")


async def private_topics(kind: str) -> tuple[str, dict[str, str]]:
    """A random run tag and the run's topic names by role (frames, faces, ...), created on the broker."""
    from services.common.topics import ensure_topics, private_specs

    tag = "".join(random.choices(string.ascii_lowercase, k=6))
    specs = private_specs(kind, tag)
    await ensure_topics(BOOTSTRAP, tuple(specs.values()))
    return tag, {role: spec.name for role, spec in specs.items()}
