"""Many streams in one batch, the way a production server runs them: a fixed number of slots, stepped
together, that users join and leave.

`model.streams(n)` already steps n streams as one batch (lab.stream: a single stream is a batch of one).
A `StreamPool` adds the server's bookkeeping on top: which slot belongs to which user, a free slot for a
newcomer, and freeing a slot when a user leaves.

    pool = StreamPool(model, slots=64)
    a = pool.join("alice")                       # -> slot index; the slot starts afresh
    b = pool.join("bob")
    out = pool.feed({a: chunk_a, b: chunk_b}, sample_rate=24_000)   # {slot: [events]}
    out = pool.feed({b: chunk_b2})               # alice sent nothing this time: her slot idles
    pool.flush(a)                                # alice stopped talking: drain her delay now
    pool.leave(a)                                # her slot is free for the next user

What a slot costs and what it does not:
- Results: none. Each step runs only the slots that have a full 80 ms frame (`active` mask): an idle or
  free slot keeps its KV cache, position and text state untouched, and `reset(i)` touches only row i, so
  every user's tokens, words and end-of-turn probabilities are those they would get alone
  (tests/test_batch.py checks it with staggered joins, idle slots and a reset mid-run).
- Compute: a step computes the rows from the first to the last slot with a frame (a newcomer gets the
  lowest free slot, so the busy slots sit at the front): a 64-slot pool with 3 users steps 3 rows, and
  users whose audio arrives at different moments step in bands of neighbouring slots. Idle slots inside the
  span are computed and masked (cheaper than gathering the active rows' caches). While a hook listens, every row is
  computed, so recordings see the whole batch. bench/batch_streams.py measures the largest batch that steps
  in real time: size the pool to that.
"""

from __future__ import annotations

from .config import SAMPLE_RATE
from .stream import Streamer


class PoolFull(RuntimeError):
    """Every slot of the pool is taken."""


class StreamPool:
    """A fixed batch of `slots` streams (one `Streamer`) with users that join and leave."""

    def __init__(self, model, slots: int, **streamer_kwargs):
        if slots < 1:
            raise ValueError(f"a pool needs at least one slot, got {slots}")
        self.streamer: Streamer = model.streams(slots, **streamer_kwargs)
        self.users: list[object | None] = [None] * slots  # per slot: who holds it (None: free)
        self._taken = [False] * slots

    @property
    def slots(self) -> int:
        return self.streamer.batch_size

    @property
    def free_slots(self) -> list[int]:
        return [i for i, taken in enumerate(self._taken) if not taken]

    @property
    def busy_slots(self) -> list[int]:
        return [i for i, taken in enumerate(self._taken) if taken]

    def join(self, user: object = None, slot: int | None = None) -> int:
        """Give a new user the lowest free slot (or `slot`, if it is free), started afresh; raises PoolFull if
        there is none. A server that hands out slots itself names the slot."""
        free = self.free_slots
        if not free:
            raise PoolFull(f"all {self.slots} slots are taken")
        if slot is not None and slot not in free:
            raise ValueError(f"slot {slot} is not free (free: {free[:8]}{'...' if len(free) > 8 else ''})")
        i = free[0] if slot is None else slot
        self.streamer.reset(i)  # whatever the last user left there is gone; the other slots do not notice
        self._taken[i], self.users[i] = True, user
        return i

    def leave(self, slot: int, flush: bool = False) -> list:
        """Free a slot. With `flush`, drain its delay first and return those last events."""
        self._check(slot)
        events = self.flush(slot) if flush else []
        self.streamer.reset(slot)
        self._taken[slot], self.users[slot] = False, None
        return events

    def feed(self, chunks: dict[int, object], sample_rate: int = SAMPLE_RATE) -> dict[int, list]:
        """Audio for some slots, {slot: chunk}; the others idle. Returns {slot: events} for the slots fed
        (a slot that only completed part of a frame gets an empty list)."""
        for i in chunks:
            self._check(i)
        per_slot = [chunks.get(i) for i in range(self.slots)]
        events = self.streamer.feed(per_slot, sample_rate)
        return {i: events[i] for i in chunks}

    def flush(self, slot: int) -> list:
        """The flush trick for one slot (see Streamer.flush); the other slots do not step."""
        self._check(slot)
        events = self.streamer.flush(slot)
        return events if self.slots == 1 else events[slot]  # a batch of one answers with a flat list

    def _check(self, slot: int):
        if not (0 <= slot < self.slots):
            raise IndexError(f"slot {slot} out of range: the pool has {self.slots} slots")
        if not self._taken[slot]:
            raise ValueError(f"slot {slot} is free: join() the pool first")

    def __repr__(self):
        busy = ", ".join(f"{i}: {self.users[i]!r}" for i in self.busy_slots)
        return f"StreamPool({len(self.busy_slots)}/{self.slots} slots busy{': ' + busy if busy else ''})"

