"""Does a live stream run forever in constant memory? Stream N minutes of speech-like audio (default 60,
`--quick` 5) through one stream of the default model, in 80 ms chunks at 24 kHz, as fast as the machine
allows, and sample the resident memory (/proc/self/statm) once a simulated minute. The ring KV cache is
bounded by the context, so after the first minute (past the 20 s context, allocator warmed) nothing should
grow. Target: growth after the first minute < 20 MB.

    python bench/memory_soak.py [--quick] [--minutes N] [--json] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hook_overhead import bench_model  # noqa: E402  (it also puts the repository on sys.path)

from lab.events import Step, Word  # noqa: E402
from lab.model import FRAME_SIZE, SAMPLE_RATE  # noqa: E402

TARGET_MB = 20.0
PAGE = 4096


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def speechlike_loop(seconds: float = 37.0, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts of a gliding harmonic tone and noise with pauses, float32 at 24 kHz. A loop of a
    length prime to the frame size, so that the model does not see the same frames in the same phase."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 110 + 60 * np.sin(2 * np.pi * 0.5 * t) + 30 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) * (np.sin(2 * np.pi * 0.23 * t) > -0.3)
    noise = rng.standard_normal(n) * (0.05 + 0.1 * (np.sin(2 * np.pi * 1.7 * t) > 0.8))
    return (0.25 * voiced * syllables + 0.3 * noise * syllables + 0.003 * rng.standard_normal(n)).astype(np.float32)


def soak(model, minutes: int, progress: bool = True) -> dict:
    loop = speechlike_loop()
    stream = model.stream()
    cache_bytes = [stream.state.cache.nbytes()]
    samples = []  # (minute, rss MB, steps, words, wall s)
    steps = words = 0
    per_minute = 60 * SAMPLE_RATE // FRAME_SIZE * FRAME_SIZE  # whole 80 ms chunks
    position = 0
    t0 = time.perf_counter()
    samples.append((0, rss_mb(), 0, 0, 0.0))
    for minute in range(1, minutes + 1):
        for _ in range(per_minute // FRAME_SIZE):
            start = position % len(loop)
            chunk = loop[start:start + FRAME_SIZE]
            if len(chunk) < FRAME_SIZE:  # wrap around the loop
                chunk = np.concatenate([chunk, loop[:FRAME_SIZE - len(chunk)]])
            position += FRAME_SIZE
            for e in stream.feed(chunk, SAMPLE_RATE):
                steps += isinstance(e, Step)
                words += isinstance(e, Word)
        cache_bytes.append(stream.state.cache.nbytes())
        samples.append((minute, rss_mb(), steps, words, time.perf_counter() - t0))
        if progress:
            m, rss, s, w, wall = samples[-1]
            print(f"  minute {m:3d}: RSS {rss:8.1f} MB, {s} steps, {w} words, {wall:7.1f} s wall", flush=True)
    after_first = [rss for m, rss, *_ in samples if m >= 1]
    wall = samples[-1][4]
    return {
        "minutes": minutes,
        "steps": steps,
        "words": words,
        "rss_mb_per_minute": [round(rss, 2) for _, rss, *_ in samples],
        "rss_start_mb": round(samples[0][1], 2),
        "rss_after_first_minute_mb": round(after_first[0], 2),
        "rss_end_mb": round(after_first[-1], 2),
        "growth_after_first_minute_mb": round(after_first[-1] - after_first[0], 2),
        "max_growth_after_first_minute_mb": round(max(after_first) - after_first[0], 2),
        "kv_cache_bytes": cache_bytes[0],
        "kv_cache_constant": len(set(cache_bytes)) == 1,
        "wall_s": round(wall, 1),
        "real_time_factor": round(minutes * 60 / wall, 1),
        "ms_per_step": round(1e3 * wall / max(steps, 1), 3),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5 minutes of audio instead of 60")
    p.add_argument("--minutes", type=int, default=None, help="minutes of audio (overrides --quick)")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    minutes = args.minutes or (5 if args.quick else 60)

    model, which = bench_model()
    print(f"model: {which}")
    print(f"streaming {minutes} min of speech-like audio, 80 ms chunks at 24 kHz, one stream, "
          f"{args.threads} torch thread(s)")
    r = soak(model, minutes)
    ok = r["growth_after_first_minute_mb"] < TARGET_MB and r["kv_cache_constant"]
    print(f"{'measure':<40}{'value':>14}")
    for label, value in [
        ("RSS at start (MB)", f"{r['rss_start_mb']:.1f}"),
        ("RSS after the first minute (MB)", f"{r['rss_after_first_minute_mb']:.1f}"),
        (f"RSS after {minutes} min (MB)", f"{r['rss_end_mb']:.1f}"),
        ("growth after the first minute (MB)", f"{r['growth_after_first_minute_mb']:+.2f}"),
        ("largest growth seen (MB)", f"{r['max_growth_after_first_minute_mb']:+.2f}"),
        ("KV cache (MB), constant", f"{r['kv_cache_bytes'] / 1e6:.2f}, {'yes' if r['kv_cache_constant'] else 'NO'}"),
        ("steps / words", f"{r['steps']} / {r['words']}"),
        ("wall time (s)", f"{r['wall_s']:.1f}"),
        ("real-time factor (x)", f"{r['real_time_factor']:.1f}"),
        ("ms per step (streamer, all in)", f"{r['ms_per_step']:.3f}"),
    ]:
        print(f"{label:<40}{value:>14}")
    print(f"target: growth after the first minute < {TARGET_MB:g} MB: {'met' if ok else 'NOT met'}")
    if args.json:
        print(json.dumps({"benchmark": "memory_soak", "model": which, "threads": args.threads, "target_met": ok,
                          **r}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
