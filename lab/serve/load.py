"""N real-time clients against a server that speaks Kyutai's protocol: what "N streams" means in latency.
Used by bench/serve_load.py (64 clients, a server in its own process) and notebook 04 (a few).

Each client is a `lab.remote.AsyncRemoteStream` sending 80 ms of audio every 80 ms (a microphone's pace),
the starts spread over one frame. Measured on each client's clock:
- step lag: a frame sent -> the Step of that frame back (queueing, the batched step, both sockets);
- word emission latency: the frame holding a word's start sent -> that Word back (the text delay, the
  word's length and the step lag; a local stream has all but the step lag: `local_row`). The start, not
  the end: a Word's end is known only at the next EPAD, usually after the Word is out (lab.tokenizer);
- words exact: whether the client got the very words `model.transcribe()` gives for its audio.
"""

from __future__ import annotations

import asyncio
import random
import time

import numpy as np

from ..audio import load_audio
from ..config import FRAME_RATE, SAMPLE_RATE
from ..resources import samples_root


def clip(seconds: float) -> np.ndarray:
    """The sample clips one after another, repeated to `seconds`."""
    audio = np.concatenate([load_audio(p)[0] for p in sorted(samples_root().glob("*.wav"))])
    reps = int(np.ceil(seconds * SAMPLE_RATE / len(audio)))
    return np.tile(audio, reps)[: int(seconds * SAMPLE_RATE)].astype(np.float32)


def _frame(time_s: float) -> int:
    """The frame holding stream time `time_s` (frame k covers k/12.5 to (k+1)/12.5)."""
    return max(int(np.floor(time_s * FRAME_RATE + 1e-6)), 0)


def word_latencies_ms(t) -> list[float]:
    """Word arrival - the moment the frame holding its start was sent, for a lab.remote transcript."""
    sent = t.steps.sent_s.dropna().to_numpy()
    return [(arrival - sent[min(_frame(w.start_s), len(sent) - 1)]) * 1000
            for w, arrival in zip(t.words, t.word_arrivals)]


def _pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def local_row(model, audio: np.ndarray) -> tuple[dict, list]:
    """The same audio through a local stream: its words (the reference) and their emission latency, the
    end of the frame holding a word's start -> the step that emitted it (stream time, no waiting)."""
    t = model.transcribe((audio, SAMPLE_RATE))
    ms = [(w.emitted_s - (_frame(w.start_s) + 1) / FRAME_RATE) * 1000 for w in t.words]
    row = {"benchmark": "serve_load_local", "words": len(t.words), "word_latency_ms_p50": _pct(ms, 50),
           "word_latency_ms_p99": _pct(ms, 99), "delay_ms": round(model.cfg.delay_s * 1000, 1)}
    return row, [(w.text, w.start_s, w.end_s) for w in t.words]


async def _clients(url: str, n: int, audio: np.ndarray, api_key: str, seed: int):
    from .. import remote

    rng = random.Random(seed)

    async def one(offset_s):
        await asyncio.sleep(offset_s)
        return await remote.transcribe_async(url, audio, SAMPLE_RATE, realtime=True, api_key=api_key)

    return await asyncio.gather(*[one(rng.uniform(0, 1 / FRAME_RATE)) for _ in range(n)])


def measure(url: str, n: int, audio: np.ndarray, expected: list, api_key: str = "public_token",
            also: dict[str, list] | None = None) -> dict:
    """One row: n clients streaming `audio` at once, in real time. `also`: further references, {name: words}
    (another dtype's transcribe(), say), each counted as clients_words_equal_<name>."""
    from ..remote import run_sync

    t0 = time.time()
    results = run_sync(_clients(url, n, audio, api_key, seed=n))
    lags = np.concatenate([r.steps.lag_ms.dropna().to_numpy() for r in results])
    words = [ms for r in results for ms in word_latencies_ms(r)]
    exact = sum([(w.text, w.start_s, w.end_s) for w in r.words] == expected for r in results)
    return {"benchmark": "serve_load", "clients": n, "seconds": round(len(audio) / SAMPLE_RATE, 2),
            "steps": int(len(lags)), "step_lag_ms_p50": _pct(lags, 50), "step_lag_ms_p99": _pct(lags, 99),
            "step_lag_ms_max": round(float(lags.max()), 1), "words": len(words),
            "word_latency_ms_p50": _pct(words, 50), "word_latency_ms_p99": _pct(words, 99),
            "clients_words_exact": int(exact), "errors": sum(len(r.errors) for r in results),
            "wall_s": round(time.time() - t0, 1),
            **{f"clients_words_equal_{name}": sum([(w.text, w.start_s, w.end_s) for w in r.words] == ref
                                                  for r in results) for name, ref in (also or {}).items()}}
