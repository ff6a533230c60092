"""A client for any server that speaks Kyutai's streaming speech-to-text protocol (`dsm-lab serve`, or
Kyutai's moshi-server): what comes back is recorded into the objects a local stream gives, so the turn lab,
the latency lab and the notebooks work on a deployed server too.

    t = lab.remote.transcribe("ws://127.0.0.1:8080", "clip.wav", api_key="public_token")
    t.words, t.steps                   # Words; one row per Step with p_eot_{h}s from Step.prs
    t.steps.arrival_s, t.word_arrivals # wall-clock arrival, seconds after the first audio was sent
    (a Word's end comes later, with the server's EndWord: feed() gives a WordEnd then, as a local stream)

    s = lab.remote.stream("ws://127.0.0.1:8080")           # the shape of model.stream()
    for chunk in microphone: events = s.feed(chunk, 48000)  # the events that have arrived so far
    events = s.flush(); s.close()

Times: a Step's `time_s` is the end of the frame it stepped, counted by this client (the n-th Step of the
stream is frame n); word times are the server's. All are minus `lead_silence_s`, the silence this client
sends before the audio (Kyutai's 2.6B model wants 1 s; ours none), so they compare with model.transcribe().
A remote stream has no flush of its own: flush() sends a Marker and then silence until the server echoes
it, which it does once the audio before it has been transcribed.

`AsyncRemoteStream` is the same client for asyncio code (bench/serve_load.py runs 64 of them in one loop).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from .audio import StreamingResampler, check_sample_rate, load_audio, to_mono_float
from .config import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from .events import Step, Transcript, Word, WordEnd, eot_column, steps_frame
from .extras import require
from .serve import protocol

DEFAULT_HORIZONS = (0.5, 1.0, 2.0, 3.0)  # what Step.prs holds for Kyutai's STT models and ours


class RemoteError(RuntimeError):
    """The server refused the connection or sent an Error message."""


@dataclass(repr=False)
class RemoteTranscript(Transcript):
    """A Transcript received from a server, with when each part arrived."""

    word_arrivals: list[float] = field(default_factory=list)  # wall s after the first audio, one per word
    errors: list[str] = field(default_factory=list)  # Error messages received


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    return url if url.split("?")[0].endswith(protocol.PATH) else url + protocol.PATH


class AsyncRemoteStream:
    """One stream to a server, for asyncio code. `await connect()`, `await feed(chunk, rate)`,
    `await flush()`, `await close()`; `events()` takes what has arrived."""

    def __init__(self, url: str, api_key: str | None = "public_token", horizons=DEFAULT_HORIZONS,
                 lead_silence_s: float = 0.0, window_frames: int = 8):
        self.url, self.api_key = _endpoint(url), api_key
        self.horizons = tuple(float(h) for h in horizons)
        self.lead_silence_s = lead_silence_s
        self.window_frames = window_frames  # silence frames in flight while flush() waits for its marker
        self.ws = None
        self._resampler: StreamingResampler | None = None
        self._partial = np.zeros(0, dtype=np.float32)
        self._t0: float | None = None  # perf_counter of the first audio sent
        self.sent_s: list[float] = []  # per frame sent: wall s after the first
        self.steps: list[Step] = []
        self.step_rows: list[dict] = []  # arrival_s, step_idx, buffered_pcm per Step
        self.words: list[Word] = []
        self.word_arrivals: list[float] = []
        self.errors: list[str] = []
        self._unended: int | None = None  # index in self.words of the last Word, until its EndWord
        self._new: list = []  # events not yet taken by events()
        self._new_lock = threading.Lock()  # events() may be called from another thread (RemoteStream)
        self._markers: set[int] = set()
        self._next_marker = 0
        self._receiver: asyncio.Task | None = None
        self.closed_reason: str | None = None

    # ------------------------------------------------------------------------------ connection
    async def connect(self, timeout: float = 30.0) -> AsyncRemoteStream:
        client = require("websockets.asyncio.client", "lab.remote")
        headers = {protocol.API_KEY_HEADER: self.api_key} if self.api_key else {}
        try:
            self.ws = await asyncio.wait_for(client.connect(self.url, additional_headers=headers, max_size=None,
                                                            compression=None), timeout)
        except require("websockets", "lab.remote").exceptions.InvalidStatus as e:
            status = e.response.status_code
            raise RemoteError(f"{self.url} refused the connection: HTTP {status}"
                              + (" (missing or wrong API key)" if status == 401 else "")) from None
        first = protocol.unpack(await asyncio.wait_for(self.ws.recv(), timeout))
        if first["type"] != "Ready":
            await self.ws.close()
            raise RemoteError(f"{self.url}: {first.get('message', first)}")
        self._receiver = asyncio.create_task(self._receive())
        return self

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
        if self._receiver is not None:
            await asyncio.gather(self._receiver, return_exceptions=True)

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc):
        await self.close()

    # ------------------------------------------------------------------------------------ sending
    async def feed(self, chunk, sample_rate: int = SAMPLE_RATE) -> list:
        """Send audio (any rate, any length; whole 80 ms frames go out, the rest waits); returns the events
        that have arrived."""
        rate = check_sample_rate(sample_rate)
        x = to_mono_float(chunk, what="audio chunk")
        if self._resampler is None:
            self._resampler = StreamingResampler(rate, SAMPLE_RATE)
            if self.lead_silence_s:
                await self._send_frames(np.zeros(round(self.lead_silence_s * SAMPLE_RATE), dtype=np.float32))
        elif self._resampler.rate_in != rate:
            raise ValueError(f"this stream started at {self._resampler.rate_in} Hz and got a chunk at {rate} Hz")
        await self._send_frames(self._resampler.push(x).astype(np.float32))
        return self.events()

    async def _send_frames(self, y: np.ndarray):
        y = np.concatenate([self._partial, y])
        n = len(y) // FRAME_SIZE * FRAME_SIZE
        self._partial = y[n:]
        for i in range(0, n, FRAME_SIZE):
            await self._send_frame(y[i:i + FRAME_SIZE])

    async def _send_frame(self, frame: np.ndarray):
        if self._t0 is None:
            self._t0 = time.perf_counter()
        self.sent_s.append(time.perf_counter() - self._t0)
        await self.ws.send(protocol.pack({"type": "Audio", "pcm": frame.tolist()}, single_float=True))

    async def send_marker(self) -> int:
        mid = self._next_marker
        self._next_marker += 1
        await self.ws.send(protocol.pack({"type": "Marker", "id": mid}))
        return mid

    async def flush(self, max_silence_s: float = 60.0, realtime: bool = False) -> list:
        """Everything the server still owes: the partial frame padded with silence, a Marker, then silence
        (a few frames ahead of the Steps, or in real time) until the Marker comes back."""
        if self._resampler is not None:
            tail = self._resampler.drain().astype(np.float32)
            y = np.concatenate([self._partial, tail])
            self._partial = np.zeros(0, dtype=np.float32)
            if len(y):
                await self._send_frames(np.concatenate([y, np.zeros((-len(y)) % FRAME_SIZE, np.float32)]))
        mid = await self.send_marker()
        silence, sent = np.zeros(FRAME_SIZE, dtype=np.float32), 0
        while mid not in self._markers:
            if self._receiver.done():
                raise RemoteError(f"the connection closed before marker {mid} came back ({self.closed_reason})")
            if sent * FRAME_SIZE > max_silence_s * SAMPLE_RATE:
                raise RemoteError(f"marker {mid} did not come back after {max_silence_s:g} s of silence")
            ahead = len(self.sent_s) - len(self.steps)
            if (realtime and self._due() <= 0) or (not realtime and ahead < self.window_frames):
                await self._send_frame(silence)
                sent += 1
            else:
                await asyncio.sleep(min(0.005, max(self._due(), 0.0)) if realtime else 0.002)
        return self.events()

    def _due(self) -> float:
        """Seconds until the next frame is due in real time (now, before the first)."""
        return 0.0 if self._t0 is None else len(self.sent_s) / FRAME_RATE - (time.perf_counter() - self._t0)

    # ---------------------------------------------------------------------------------- receiving
    async def _receive(self):
        closed = require("websockets", "lab.remote").exceptions.ConnectionClosed
        try:
            async for frame in self.ws:
                self._on_message(protocol.unpack(frame), self._now())
        except closed as e:
            self.closed_reason = str(e)
        else:
            self.closed_reason = "closed"

    def _now(self) -> float:
        return math.nan if self._t0 is None else time.perf_counter() - self._t0

    def _on_message(self, m: dict, now: float):
        kind, lead = m["type"], self.lead_silence_s
        if kind == "Step":
            n = len(self.steps)
            prs = [float(p) for p in m.get("prs", [])]
            s = Step(n, round((n + 1) / FRAME_RATE - lead, 4), -1, "", dict(zip(self.horizons, prs)), math.nan)
            self.steps.append(s)
            self.step_rows.append({"arrival_s": now, "step_idx": m.get("step_idx"),
                                   "buffered_pcm": m.get("buffered_pcm", 0)})
            self._emit(s)
        elif kind == "Word":  # delivered now, its end unknown until the EndWord (as a local stream's Word)
            w = Word(m["text"], round(float(m["start_time"]) - lead, 4), None, self._stream_time())
            self._unended = len(self.words)
            self.words.append(w)
            self.word_arrivals.append(now)
            self._emit(w)
        elif kind == "EndWord" and self._unended is not None:
            w = replace(self.words[self._unended], end_s=round(float(m["stop_time"]) - lead, 4))
            self.words[self._unended], self._unended = w, None
            self._emit(WordEnd(w.text, w.start_s, w.end_s, self._stream_time()))
        elif kind == "Marker":
            self._markers.add(m["id"])
        elif kind == "Error":
            self.errors.append(m.get("message", ""))

    def _stream_time(self) -> float:
        """Stream time of the newest Step: when what arrives now was delivered, as a local stream dates it."""
        return self.steps[-1].time_s if self.steps else -self.lead_silence_s

    def _emit(self, event):
        with self._new_lock:
            self._new.append(event)

    def events(self) -> list:
        """The events arrived since the last call: Step and Word, as a local stream gives them."""
        with self._new_lock:
            out, self._new = self._new, []
        return out

    def transcript(self) -> RemoteTranscript:
        steps = steps_frame(self.steps, self.horizons)
        steps["token"], steps["compute_ms"] = -1, math.nan
        rows = self.step_rows[:len(steps)]
        steps["arrival_s"] = [r["arrival_s"] for r in rows]
        steps["sent_s"] = [self.sent_s[i] if i < len(self.sent_s) else math.nan for i in range(len(steps))]
        steps["lag_ms"] = (steps["arrival_s"] - steps["sent_s"]) * 1000  # this frame sent -> its Step back
        steps["step_idx"] = [r["step_idx"] for r in rows]
        steps["buffered_pcm"] = [r["buffered_pcm"] for r in rows]
        return RemoteTranscript(text=" ".join(w.text for w in self.words), words=list(self.words), steps=steps,
                                word_arrivals=list(self.word_arrivals), errors=list(self.errors))


class RemoteStream:
    """The same client for plain code, notebooks and microphones: its event loop runs in a thread of its
    own, and `feed()` only hands the chunk over and returns what has arrived, like `model.stream().feed()`
    (a microphone's callback must never wait on the network). One sender task keeps the chunks in order."""

    def __init__(self, url: str, timeout: float = 30.0, **kwargs):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lab-remote", daemon=True)
        self._thread.start()
        self.remote = AsyncRemoteStream(url, **kwargs)
        self._failed: BaseException | None = None
        try:
            self._call(self._start(timeout), timeout + 5)
        except BaseException:
            self._stop_loop()
            raise

    async def _start(self, timeout: float):
        await self.remote.connect(timeout)
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self):
        while True:
            chunk, rate = await self._inbox.get()
            try:
                if self._failed is None:
                    await self.remote.feed(chunk, rate)
            except BaseException as e:  # raised again in the caller's thread, at its next call
                self._failed = e
            finally:
                self._inbox.task_done()

    def _call(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _check(self):
        if self._failed is not None:
            raise RemoteError(f"sending to {self.remote.url} failed: {self._failed}") from self._failed

    def feed(self, chunk, sample_rate: int = SAMPLE_RATE) -> list:
        """Queue audio for the server (checked here, sent by the loop thread); returns the events arrived."""
        self._check()
        rate = check_sample_rate(sample_rate)
        x = to_mono_float(chunk, what="audio chunk")
        self._loop.call_soon_threadsafe(self._inbox.put_nowait, (x, rate))
        return self.remote.events()

    def flush(self, **kwargs) -> list:
        """Send what is queued, then `AsyncRemoteStream.flush`: the words still owed, once they are in."""
        async def flush():
            await self._inbox.join()
            self._check()
            return await self.remote.flush(**kwargs)
        return self._call(flush())

    def transcript(self) -> RemoteTranscript:
        return self._call(_value(self.remote.transcript))

    def close(self):
        try:
            self._call(self._close(), 30)
        finally:
            self._stop_loop()

    async def _close(self):
        self._sender.cancel()
        await self.remote.close()

    def _stop_loop(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


async def _value(f):
    return f()


def stream(url: str, api_key: str | None = "public_token", **kwargs) -> RemoteStream:
    """A live stream to a server: `feed(chunk, rate)`, `flush()`, `close()`, `transcript()`."""
    return RemoteStream(url, api_key=api_key, **kwargs)


async def transcribe_async(url: str, audio: np.ndarray, sample_rate: int, realtime: bool = False,
                           **kwargs) -> RemoteTranscript:
    """`transcribe()` for asyncio code: the audio in 80 ms frames (paced in real time if asked), then flushed."""
    async with AsyncRemoteStream(url, **kwargs) as s:
        x = to_mono_float(audio, what="audio")
        step = max(1, round(sample_rate / FRAME_RATE))  # one frame's worth at the source rate
        for k, i in enumerate(range(0, len(x), step)):
            if realtime and s._t0 is not None:
                await asyncio.sleep(max(0.0, (k + round(s.lead_silence_s * FRAME_RATE)) / FRAME_RATE
                                        - (time.perf_counter() - s._t0)))
            await s.feed(x[i:i + step], sample_rate)
        await s.flush(realtime=realtime)
        return s.transcript()


def transcribe(url: str, source, sample_rate: int | None = None, api_key: str | None = "public_token",
               realtime: bool = False, **kwargs) -> RemoteTranscript:
    """A file, an array or (array, rate) through a server, like `model.transcribe()` through the model.
    `realtime=True` sends 80 ms every 80 ms (as a microphone would); else as fast as the server takes it."""
    if isinstance(source, tuple):
        audio, sample_rate = source
    elif isinstance(source, (str, bytes, bytearray, memoryview)) or hasattr(source, "__fspath__"):
        audio, sample_rate = load_audio(source)
    else:
        audio = source
        if sample_rate is None:
            raise ValueError("transcribe(url, array) needs sample_rate=, or pass (array, sample_rate)")
    return run_sync(transcribe_async(url, audio, sample_rate, realtime=realtime, api_key=api_key, **kwargs))


def run_sync(coro):
    """Run a coroutine to its end from plain code, also inside Jupyter, whose thread already runs an event
    loop (there asyncio.run refuses): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    out: dict = {}

    def target():
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=target, name="lab-remote-run")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


__all__ = ["AsyncRemoteStream", "RemoteError", "RemoteStream", "RemoteTranscript", "eot_column", "run_sync",
           "stream", "transcribe", "transcribe_async"]
