"""The model side of `dsm-lab serve`: one StreamPool, stepped by one thread, one batched step per frame.

Clients come and go on the event loop; the model never runs there. Each client holds a `Channel`: its slot
of the pool, the 24 kHz samples it sent that the model has not stepped yet, and its pending markers. The
model thread repeats: take one 80 ms frame from every channel that has one, step the pool once for all of
them (slots without a frame sit the step out, untouched), hand each channel its messages. As moshi-server
does, a step runs as soon as any channel has a frame; while it runs the frames of the others arrive, so
under load the steps fill up by themselves.

The lock guards the channel table and the buffers only, never a model step, so the event loop waits at
most for a list append.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from ..batch import StreamPool
from ..config import FRAME_RATE, FRAME_SIZE
from ..events import Step, Word, WordEnd
from . import protocol


class Channel:
    """One client's stream: its slot, its unstepped audio, its markers."""

    def __init__(self, slot: int, sink):
        self.slot, self.sink = slot, sink
        self.generation = 0  # bumped by restart(): messages of steps taken before it are dropped
        self._clear()

    def _clear(self):
        self.chunks: deque[np.ndarray] = deque()
        self.buffered = 0  # samples received and not yet stepped
        self.steps = 0  # model steps of this stream since it (re)started
        self.in_step = 0  # frames taken by the step running now (counted in neither buffered nor steps)
        self.markers: list[tuple[int, int]] = []  # (steps after which it is due, id)
        self.fresh = True  # the pool's slot is reset before this channel's first frame
        self.closed = False

    def take_frame(self) -> np.ndarray:
        out, need = [], FRAME_SIZE
        while need:
            head = self.chunks[0]
            if len(head) <= need:
                out.append(self.chunks.popleft())
                need -= len(head)
            else:
                out.append(head[:need])
                self.chunks[0] = head[need:]
                need = 0
        self.buffered -= FRAME_SIZE
        return np.concatenate(out)


class Engine:
    """`slots` streams of `model`, stepped together by a thread of their own.

    `deliver(batch)` is called from the model thread after every step with [(channel, generation, [messages])]:
    the server hands it to its event loop. Nothing here knows about sockets."""

    def __init__(self, model, slots: int, deliver, **streamer_kwargs):
        self.pool = StreamPool(model, slots, **streamer_kwargs)
        self.deliver = deliver
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self.channels: list[Channel | None] = [None] * slots
        self._freed: list[int] = []  # slots whose channel left: reset by the model thread
        # A marker comes back once the audio before it has stepped and the text delay has passed: D frames,
        # plus one because a step sees the frame before it ("training" alignment, lab/stream.py).
        self.marker_lag = model.cfg.delay_frames + 1
        self.prefix_frames = round(model.cfg.silence_prefix_s * FRAME_RATE)
        self.step_idx = 0  # batched steps run (moshi-server's step_idx counts the same)
        self.step_log: deque[tuple[float, int, float]] = deque(maxlen=100_000)  # (wall time, streams, ms)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None

    @property
    def slots(self) -> int:
        return self.pool.slots

    @property
    def used_slots(self) -> int:
        with self.lock:
            return sum(c is not None for c in self.channels)

    # ------------------------------------------------------------------ called from the event loop
    def open(self, sink) -> Channel | None:
        """A channel on the lowest free slot, or None when every slot is taken."""
        with self.lock:
            for i, c in enumerate(self.channels):
                if c is None:
                    self.channels[i] = Channel(i, sink)
                    return self.channels[i]
        return None

    def close(self, ch: Channel):
        with self.lock:
            if ch.closed:
                return
            ch.closed = True
            ch.chunks.clear()
            if self.channels[ch.slot] is ch:
                self.channels[ch.slot] = None
                self._freed.append(ch.slot)

    def push(self, ch: Channel, samples: np.ndarray) -> int:
        """Queue 24 kHz samples for the channel; returns how many wait now."""
        with self.lock:
            if len(samples) and not ch.closed:
                ch.chunks.append(samples)
                ch.buffered += len(samples)
                if ch.buffered >= FRAME_SIZE:
                    self._wake.notify()
            return ch.buffered

    def add_marker(self, ch: Channel, mid: int):
        with self.lock:
            lag = self.marker_lag + (self.prefix_frames if ch.steps == 0 else 0)
            ch.markers.append((ch.steps + ch.in_step + protocol.frames_for(ch.buffered) + lag, mid))

    def restart(self, ch: Channel):
        """The client's Init: its stream starts afresh on the same slot."""
        with self.lock:
            ch._clear()
            ch.generation += 1

    # ------------------------------------------------------------------------- the model thread
    def start(self):
        self._thread = threading.Thread(target=self._run, name="dsm-serve-model", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        with self.lock:
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self):
        try:
            while not self._stop.is_set():
                if not self.step_once():
                    with self.lock:
                        if not any(c is not None and c.buffered >= FRAME_SIZE for c in self.channels):
                            self._wake.wait(timeout=0.05)
        except BaseException as e:  # kept for the server to report; the clients see their sockets close
            self.error = e
            raise

    def step_once(self) -> bool:
        """One batched step for every channel with a full frame; False if none had one."""
        with self.lock:
            for slot in self._freed:
                if slot in self.pool.busy_slots:
                    self.pool.leave(slot)
            self._freed.clear()
            frames, taken = {}, {}
            for ch in self.channels:
                if ch is None:
                    continue
                if ch.fresh:
                    if ch.slot in self.pool.busy_slots:
                        self.pool.leave(ch.slot)
                    self.pool.join(ch, slot=ch.slot)
                    ch.fresh = False
                if ch.buffered >= FRAME_SIZE:
                    frames[ch.slot] = ch.take_frame()
                    taken[ch.slot] = (ch, ch.generation)
                    ch.in_step = 1
        if not frames:
            return False
        t0 = time.perf_counter()
        events = self.pool.feed(frames)
        ms = (time.perf_counter() - t0) * 1000
        self.step_idx += 1
        self.step_log.append((time.time(), len(frames), ms))
        batch = []
        with self.lock:
            for slot, evs in events.items():
                ch, generation = taken[slot]
                if ch.generation == generation:
                    ch.in_step = 0
                if ch.closed or ch.generation != generation:
                    continue  # the client left or restarted during the step
                batch.append((ch, generation, self._messages(ch, evs)))
        if batch:
            self.deliver(batch)
        return True

    def _messages(self, ch: Channel, events: list) -> list[dict]:
        out = []
        for e in events:
            if isinstance(e, Step):
                ch.steps += 1
                out.append(protocol.step(self.step_idx, list(e.p_eot.values()), ch.buffered))
            elif isinstance(e, Word):  # its end comes later, as a WordEnd, at the next EPAD
                out.append(protocol.word(e.text, e.start_s))
                if e.end_s is not None:
                    out.append(protocol.end_word(e.end_s))
            elif isinstance(e, WordEnd):
                out.append(protocol.end_word(e.end_s))
        while ch.markers and ch.markers[0][0] <= ch.steps:
            out.append(protocol.marker(ch.markers.pop(0)[1]))
        return out
