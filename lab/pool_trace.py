"""A batch of streams, recorded tick by tick while users join, pause and leave: the data behind the batching
figure of notebook 04.

    frames = record_pool(model, SCENARIO, slots=3, context=8)
    latency_figures.pool_figure(frames)

Every tick, each user present sends one 80 ms frame, except those the scenario marks idle; `StreamPool`
steps the batch once. After the tick we copy what the server keeps per slot: who holds it, whether it
stepped (the `active` mask), its next position, and its ring of keys and values (`KVCache.positions`: the
absolute step held in each of the `context` ring slots, -1 empty). A small `context` makes the ring wrap
within a few ticks; the weights do not matter to the bookkeeping, so the loaded model serves, its context
shortened on a copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .batch import StreamPool
from .config import FRAME_SIZE

# tick -> what happens before the batch steps: ("join" | "leave" | "idle", user). Idle lasts one tick.
SCENARIO = {0: [("join", "ann")], 2: [("join", "bob")], 5: [("join", "cyd")], 6: [("idle", "bob")],
            7: [("idle", "bob")], 9: [("leave", "ann")], 11: [("join", "dan")], 14: [("leave", "cyd")]}


@dataclass
class PoolFrame:
    tick: int
    users: list  # per slot: who holds it (None: free)
    active: list[bool]  # per slot: did it step this tick
    next_pos: list[int]  # per slot: the position its next step will have
    ring: np.ndarray  # (slots, context): absolute step held in each ring slot, -1 empty
    events: list[str]  # what happened before this tick's step


def record_pool(model, scenario: dict | None = None, slots: int = 3, context: int = 8, ticks: int = 18,
                seed: int = 0) -> list[PoolFrame]:
    """Run `scenario` on a `StreamPool` of `slots` and record every tick (see the module docstring)."""
    scenario = SCENARIO if scenario is None else scenario
    small = copy.deepcopy(model)
    small.cfg.context = context  # the layers share this config object: the copy's ring has `context` slots
    pool = StreamPool(small, slots)
    rng = np.random.default_rng(seed)
    where: dict[str, int] = {}
    frames = []
    for tick in range(ticks):
        events, idle = [], set()
        for action, user in scenario.get(tick, []):
            if action == "join":
                where[user] = pool.join(user)
                events.append(f"{user} joins slot {where[user]}")
            elif action == "leave":
                pool.leave(where.pop(user))
                events.append(f"{user} leaves")
            elif action == "idle":
                idle.add(user)
                events.append(f"{user} sends nothing")
            else:
                raise ValueError(f"unknown action {action!r} at tick {tick}")
        chunks = {slot: 0.05 * rng.standard_normal(FRAME_SIZE).astype(np.float32)
                  for user, slot in where.items() if user not in idle}
        if chunks:
            pool.feed(chunks)
        cache = pool.streamer.state.cache
        frames.append(PoolFrame(tick, list(pool.users), [i in chunks for i in range(slots)],
                                cache.next_pos.tolist(), cache.positions.numpy().copy(), events))
    return frames
