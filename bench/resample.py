"""Streaming resamplers to 24 kHz: the polyphase one written for lab.audio against soxr's `ResampleStream`.

The input is a speech-like signal (a gliding voice with harmonics up to 5 kHz shaped by three formants,
syllable bursts, a hiss of sinusoids between 3 and 6 kHz) written as a formula of time, so the perfect
answer is known: the same formula at 24 kHz. At 16, 44.1 and 48 kHz, each resampler is measured for

- exactness: max and RMS difference from that perfect answer, and from scipy's one-shot `resample_poly`
  of the whole signal (the filter lab.audio streams: a check that streaming it changes nothing);
- chunking: the signal streamed in chunks of irregular sizes (1 sample to 100 ms) against one push of the
  whole; a streaming resampler must give the same samples however its input is cut;
- speed: input samples per second, 10 s in irregular chunks (about 40 ms on average), median of repeats
  taken in turn;
- waiting: audio arriving in real time in chunks of 10, 40 or 80 ms, how long after the last sample of a
  24 kHz frame (80 ms) was spoken the resampler has given it out; "chunks alone" is what the chunking costs
  with a resampler that holds nothing back.

    python bench/resample.py            # writes results/resample.json; then python bench/report.py

Another job may share the machine: speeds are medians, and the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from math import gcd
from pathlib import Path

import numpy as np
import soxr
from scipy.signal import resample_poly

from lab.audio import StreamingResampler

OUT = 24_000
RATES = (16_000, 44_100, 48_000)
FRAME = 1920  # samples of one 80 ms model frame at 24 kHz
RESULT = Path(__file__).resolve().parent / "results" / "resample.json"


def speechlike(t: np.ndarray, seed: int = 0) -> np.ndarray:
    """The test signal at times `t` (seconds): every component is below 6 kHz, so any rate here holds it."""
    rng = np.random.default_rng(seed)
    # f0 = 120 + 40 sin(2 pi 0.7 t) + 15 sin(2 pi 3.1 t) Hz, integrated in closed form.
    phase = 2 * np.pi * 120 * t - 40 / 0.7 * np.cos(2 * np.pi * 0.7 * t) - 15 / 3.1 * np.cos(2 * np.pi * 3.1 * t)
    voice = np.zeros_like(t)
    for k in range(1, 29):  # 28 x 175 Hz (the highest f0) < 5 kHz
        formants = sum(np.exp(-0.5 * ((k * 120 - f) / 250) ** 2) for f in (500, 1500, 2500))
        voice += (0.2 + formants) / k * np.sin(k * phase)
    hiss = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(3000, 6000, 60),
                                                            rng.uniform(0, 2 * np.pi, 60))) / 60
    syllables = (0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)) ** 2
    fricatives = (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t)) ** 4
    duration = t[-1] + t[1] - t[0] if len(t) > 1 else 1.0
    fade = np.clip(np.minimum(t, duration - t) / 0.05, 0, 1) ** 2  # 50 ms fades: no edge to ring on
    return fade * (0.3 * syllables * voice + 0.3 * fricatives * hiss)


def irregular_chunks(n: int, seed: int, largest: int) -> list[slice]:
    rng, cuts, i = np.random.default_rng(seed), [], 0
    while i < n:
        step = int(rng.integers(1, largest + 1))
        cuts.append(slice(i, i + step))
        i += step
    return cuts


class Ours:
    name = "lab.audio (polyphase)"

    def __init__(self, rate: int):
        self.r = StreamingResampler(rate, OUT)

    def push(self, x):
        return self.r.push(x)

    def finish(self):
        return self.r.drain()


class Soxr:
    name = "soxr.ResampleStream (HQ)"

    def __init__(self, rate: int):
        self.r = soxr.ResampleStream(rate, OUT, 1, dtype="float64", quality="HQ")

    def push(self, x):
        return self.r.resample_chunk(x)

    def finish(self):
        return self.r.resample_chunk(np.zeros(0), last=True)


def stream(kind, rate: int, x: np.ndarray, cuts: list[slice] | None = None) -> np.ndarray:
    r = kind(rate)
    parts = [r.push(x)] if cuts is None else [r.push(x[c]) for c in cuts]
    n_out = round(len(x) * OUT / rate)
    return np.concatenate(parts + [r.finish()])[:n_out]


def exactness(kind, rate: int, seconds: float) -> dict:
    x = speechlike(np.arange(int(seconds * rate)) / rate)
    ideal = speechlike(np.arange(round(len(x) * OUT / rate)) / OUT)
    g = gcd(rate, OUT)
    oneshot = resample_poly(x, OUT // g, rate // g)[: len(ideal)]
    whole = stream(kind, rate, x)
    chunked = [stream(kind, rate, x, irregular_chunks(len(x), seed, rate // 10)) for seed in range(3)]
    chunked += [stream(kind, rate, x[: rate // 10], irregular_chunks(rate // 10, 9, 3))]  # 1 to 3 samples
    return {"samples_out": len(whole), "expected_out": len(ideal),
            "max_abs_vs_ideal": float(np.abs(whole - ideal).max()),
            "rms_vs_ideal": float(np.sqrt(np.mean((whole - ideal) ** 2))),
            "max_abs_vs_resample_poly": float(np.abs(whole - oneshot).max()),
            "rms_vs_resample_poly": float(np.sqrt(np.mean((whole - oneshot) ** 2))),
            "signal_rms": float(np.sqrt(np.mean(ideal ** 2))),
            "max_abs_chunked_vs_whole": float(max(np.abs(c - w).max() for c, w in
                                                  zip(chunked, [whole] * 3 + [stream(kind, rate, x[: rate // 10])])))}


def speeds(kinds, rate: int, seconds: float, repeats: int) -> dict:
    """Input samples per second of each resampler, run in turn repeat after repeat so that the other work on
    the machine hits all of them alike: the median, and the fastest run (the least disturbed)."""
    x = speechlike(np.arange(int(seconds * rate)) / rate)
    cuts = irregular_chunks(len(x), 1, rate * 80 // 1000)  # 40 ms on average
    times = {kind: [] for kind in kinds}
    for _ in range(repeats):
        for kind in kinds:
            r = kind(rate)
            t0 = time.perf_counter()
            for c in cuts:
                r.push(x[c])
            r.finish()
            times[kind].append(time.perf_counter() - t0)
    return {kind: {"samples_per_s": len(x) / statistics.median(t), "samples_per_s_fastest": len(x) / min(t),
                   "repeats": repeats, "chunks": len(cuts)} for kind, t in times.items()}


class Instant:
    """A resampler that holds nothing back (only its output count is real): what the chunking alone costs."""
    name = "chunks alone"

    def __init__(self, rate: int):
        self.rate, self.received, self.given = rate, 0, 0

    def push(self, x):
        self.received += len(x)
        n = self.received * OUT // self.rate - self.given
        self.given += n
        return np.zeros(n)

    def finish(self):
        return np.zeros(0)


def waiting(kind, rate: int, chunk_ms: int, seconds: float = 10.0) -> dict:
    """Audio arriving in real time in chunks of `chunk_ms`, the first one shorter (0.37 chunk) so that chunk
    ends fall anywhere in a frame, as they do from a microphone: for each 24 kHz frame (80 ms), the time
    from the moment its last sample was spoken to the end of the chunk after which the resampler had given
    it out."""
    x = speechlike(np.arange(int(seconds * rate)) / rate)
    step = rate * chunk_ms // 1000
    starts = [0, *range(int(0.37 * step), len(x), step)]
    r, given, ready = kind(rate), 0, []
    for start, end in zip(starts, starts[1:] + [len(x)]):
        given += len(r.push(x[start:end]))
        while (len(ready) + 1) * FRAME <= given:
            ready.append(end / rate - (len(ready) + 1) * FRAME / OUT)
    ms = 1000 * np.array(ready)
    return {"chunk_ms": chunk_ms, "frames": len(ms), "wait_ms_p50": float(np.median(ms)),
            "wait_ms_mean": float(ms.mean()), "wait_ms_max": float(ms.max())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="signal length for the speed runs")
    p.add_argument("--repeats", type=int, default=9, help="speed runs per resampler and rate (median)")
    p.add_argument("--out", type=Path, default=RESULT)
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    rows = []
    for rate in RATES:
        speed = speeds((Ours, Soxr), rate, args.seconds, args.repeats)
        for kind in (Ours, Soxr):
            row = {"resampler": kind.name, "rate_in": rate, **exactness(kind, rate, seconds=2.0), **speed[kind],
                   "waiting": [waiting(kind, rate, ms) for ms in (10, 40, 80)]}
            rows.append(row)
            print(json.dumps(row), flush=True)
        rows.append({"resampler": Instant.name, "rate_in": rate,
                     "waiting": [waiting(Instant, rate, ms) for ms in (10, 40, 80)]})
    result = {"benchmark": "resample", "rate_out": OUT, "rates_in": list(RATES), "rows": rows,
              "soxr": soxr.__version__, "numpy": np.__version__, "python": platform.python_version(),
              "cores": len(os.sched_getaffinity(0)), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "load_avg_before": [round(v, 2) for v in load_before],
              "load_avg_after": [round(v, 2) for v in os.getloadavg()],
              "command": " ".join(["python bench/resample.py", *(sys.argv[1:] if argv is None else argv)])}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
