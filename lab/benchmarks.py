"""Benchmarks behind `dsm-lab bench [--quick] [--json] [--model M]`: where a streaming step's milliseconds go.

- single_stream: one `model.stream()` over speech, offline: step time distribution and real-time factor;
- batch: `model.streams(B)` at steady state (KV ring full), one 80 ms frame per stream per call: step time
  against B (fp32 on one thread and on every core, and a bf16 copy of the model on every core); B streams
  run in real time while a step takes < 80 ms;
- flush: `Streamer.flush()` against its floor (D + 1) x median step, the real-time wait D x 80 ms, and
  Unmute's variant (ceil(delay / 0.08) + 1 frames of zeros through feed), for several delays D;
- hook_overhead: lab.hook_bench, the measurement of bench/hook_overhead.py;
- stt_1b_size: our step at Kyutai stt-1b-en_fr's size with random weights, fp32 and bf16, with memory.
Each result is one dict (one JSON line with --json). The bench/ scripts run the same functions at full size
and write bench/results/.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .model import DSM, FRAME_RATE, FRAME_SIZE, SAMPLE_RATE, DSMConfig

REALTIME_MS = 1000 / FRAME_RATE  # 80 ms: a step must be faster than the audio it eats


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"benchmark": "machine", "cpu": cpu, "cores": len(os.sched_getaffinity(0)),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version(),
            "load_avg_1min": os.getloadavg()[0]}  # other work on the machine skews every timing


def load_model(name=None) -> tuple[DSM, str]:
    """The model to benchmark and a line saying which (hook_overhead's fallback: random weights at the
    embedded size when there is no embedded model)."""
    if name is not None:
        import lab

        model = lab.load(name)
        return model, f"{name} ({model.n_params / 1e6:.1f} M parameters)"
    from .hook_bench import bench_model

    return bench_model()


SPEECH = "synthetic speech (lab.synth turns)"


def speech(seconds: float, seed: int = 0) -> tuple[np.ndarray, str]:
    """(audio at 24 kHz, what it is): synthetic speech (lab.synth turns back to back); when a speech engine
    cannot run (no espeak-ng, festival or piper here), harmonic tones in syllable-like bursts, and the second
    value says so and why. Every row measured on it carries that value as `audio`, and bench/report.py
    prints it: a timing on tones is never passed off as one on speech."""
    try:
        from .synth import synthesize_turn

        parts, total, k = [], 0, 0
        while total < seconds * SAMPLE_RATE:
            audio, _ = synthesize_turn(seed + k)
            parts.append(audio)
            total, k = total + len(audio), k + 1
        return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)].astype(np.float32), SPEECH
    except (ImportError, OSError, RuntimeError) as e:  # what a missing engine or its library raises
        rng = np.random.default_rng(seed)
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        voiced = np.sin(2 * np.pi * 1.3 * t) > -0.2
        x = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 6)) * voiced
        tones = (0.3 * x + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
        return tones, f"tones, not speech (speech synthesis failed: {type(e).__name__}: {e})"


def fill_cache(cache) -> None:
    """Steady state without running `context` steps: every stream's ring holds a full context of past
    steps, so attention reads all of it, as it does after the first context seconds of a stream."""
    C = cache.context
    cache.positions.copy_(torch.arange(C, 2 * C, device=cache.positions.device).expand_as(cache.positions))
    cache.next_pos.fill_(2 * C)


def _ms(samples) -> dict:
    a = np.asarray(samples, dtype=float) * 1e3
    return {"p50": float(np.median(a)), "p90": float(np.percentile(a, 90)), "max": float(a.max())}


def single_stream(model, seconds: float = 30.0, threads: int = 1) -> dict:
    """One stream over `seconds` of speech in 80 ms chunks, offline (as fast as it goes)."""
    from .latency import replay, step_distribution

    torch.set_num_threads(threads)
    audio, what = speech(seconds)
    replay(model, audio[: 50 * FRAME_SIZE], SAMPLE_RATE)  # warm up
    r = replay(model, audio, SAMPLE_RATE, mode="offline")
    feed = _ms(r.calls.compute_s)
    return {"benchmark": "single_stream", "threads": threads, "audio": what, "audio_s": r.audio_s, "rtf": r.rtf,
            **step_distribution(r.steps), "feed_ms_p50": feed["p50"], "feed_ms_p90": feed["p90"],
            "model_step_ms_p50": model_step_ms(model, 1, 100 if seconds >= 10 else 20)}


def model_step_ms(model, batch_size: int, steps: int) -> float:
    """Median time of `model.step()` alone (no frontend, no events) at steady state."""
    cache = model.new_cache(batch_size)
    fill_cache(cache)
    p = next(model.parameters())
    emb = 0.1 * torch.randn(batch_size, model.cfg.d_model, dtype=p.dtype, device=p.device)
    text = torch.full((batch_size,), model.cfg.pad_id, device=p.device)
    times = []
    for _ in range(steps + 3):
        t0 = time.perf_counter()
        model.step(emb, text, cache)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times[3:])


def in_dtype(model, dtype: str):
    """A copy of the model in another dtype (e.g. "bfloat16": half the KV-cache traffic, AMX matmuls),
    sharing the tokenizer; the original is untouched (bf16 -> fp32 would not give it back)."""
    if dtype == str(next(model.parameters()).dtype).replace("torch.", ""):
        return model
    keep = model.tokenizer, model.mimi
    model.tokenizer = model.mimi = None  # sentencepiece objects do not deep-copy
    try:
        twin = copy.deepcopy(model)
    finally:
        model.tokenizer, model.mimi = keep
    twin.tokenizer, twin.mimi = keep
    return twin.to(getattr(torch, dtype))


def _progress(items, on: bool, what: str):
    """`items` with a progress bar when `on` (a notebook's benchmark runs a minute or more: show it moving)."""
    if not on:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=what)


def batch(model, sizes=(1, 2, 4, 8, 16, 32, 64, 128, 192, 256), steps: int = 10, threads: int | None = None,
          stop_after_slow: bool = True, at_least: int = 1, progress: bool = False) -> list[dict]:
    """Per batch size B: time of one `Streamer.feed()` that steps all B streams by one frame (frontend,
    model, events), at steady state. `realtime`: median < 80 ms. With `stop_after_slow`, stops after the
    first size that misses, once `at_least` sizes are measured (a busy machine can miss at B = 1: the curve
    still gets its points)."""
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    frames, what = speech(max(4.0, steps * 0.08 + 1))
    rows = []
    for B in _progress(sizes, progress, "batch sizes"):
        streams = model.streams(B)
        streams.feed([frames[:FRAME_SIZE]] * B)  # start every slot (resampler, first step)
        fill_cache(streams.state.cache)
        times = []
        for k in range(steps + 2):
            chunk = frames[(k + 1) * FRAME_SIZE:(k + 2) * FRAME_SIZE]
            t0 = time.perf_counter()
            streams.feed([chunk] * B)
            times.append(time.perf_counter() - t0)
        ms = _ms(times[2:])
        kv_mb = streams.state.cache.nbytes() / 2**20
        del streams
        rows.append({"benchmark": "batch", "batch_size": B, "threads": torch.get_num_threads(), "dtype": dtype,
                     "audio": what,
                     "step_ms_p50": ms["p50"], "step_ms_p90": ms["p90"], "per_stream_ms": ms["p50"] / B,
                     "model_step_ms_p50": model_step_ms(model, B, steps),  # of which the transformer alone
                     "realtime": ms["p50"] < REALTIME_MS, "kv_cache_mb": kv_mb})
        if stop_after_slow and ms["p50"] >= REALTIME_MS and len(rows) >= at_least:
            break
    return rows


def streams_in_realtime(rows: list[dict]) -> int:
    """The largest batch size measured whose median step is under 80 ms (0 if none)."""
    return max((r["batch_size"] for r in rows if r["realtime"]), default=0)


def flush(model, delays=(1, 2, 4, 6, 8, 12, 16, 24, 32), trials: int = 10, threads: int = 1,
          warm_s: float = 3.0, progress: bool = False) -> list[dict]:
    """`Streamer.flush()` wall time for each delay D (same weights, only the flush length changes), with the
    stream at a frame boundary so that it steps exactly D + 1 frames; next to its floor, (D + 1) x the
    median step time measured in the same run, and to Unmute's variant."""
    from .latency import unmute_frames

    torch.set_num_threads(threads)
    audio, what = speech(warm_s + 1)
    audio = audio[: int(warm_s * FRAME_RATE) * FRAME_SIZE]
    original = model.cfg.delay_frames
    rows = []
    try:
        for D in _progress(delays, progress, "delays D"):
            model.cfg.delay_frames = D
            flushes, unmutes, steps = [], [], []
            for _ in range(trials + 1):
                for variant in ("flush", "unmute"):
                    s = model.stream()
                    steps += [e.compute_ms for e in s.feed(audio) if hasattr(e, "compute_ms")][5:]
                    t0 = time.perf_counter()
                    s.flush() if variant == "flush" else s.feed(np.zeros(unmute_frames(model) * FRAME_SIZE))
                    (flushes if variant == "flush" else unmutes).append(time.perf_counter() - t0)
            step_ms = statistics.median(steps)
            flush_ms = 1e3 * statistics.median(flushes[1:])
            rows.append({"benchmark": "flush", "delay_frames": D, "threads": threads, "audio": what,
                         "flush_ms": flush_ms,
                         "floor_ms": (D + 1) * step_ms, "ratio_to_floor": flush_ms / ((D + 1) * step_ms),
                         "step_ms_p50": step_ms, "wait_ms": D * REALTIME_MS,
                         "unmute_frames": unmute_frames(model),
                         "unmute_ms": 1e3 * statistics.median(unmutes[1:])})
    finally:
        model.cfg.delay_frames = original
    return rows


def hook_overhead(model, quick: bool = False) -> dict:
    """bench/hook_overhead.py's measurement (single stream, one thread), as one row."""
    torch.set_num_threads(1)
    repeats, steps = (2, 30) if quick else (10, 200)
    from .hook_bench import run

    result = run(model, repeats, steps)
    return {"benchmark": "hook_overhead", "threads": 1, **{k: v for k, v in result.items()
                                                            if k != "repeat_medians_ms"}}


STT_1B = dict(d_model=2048, num_layers=16, num_heads=16, ffn_hidden=5632, context=750, text_vocab_out=8000,
              text_vocab_in=8001, audio_input="codebooks", n_codebooks=32, codebook_card=2048, delay_frames=7,
              text_delay_s=0.5, max_period=100_000.0, name="stt-1b-en_fr-size (random weights)")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def stt_1b_size(dtypes=("float32", "bfloat16"), steps: int = 10, threads: int | None = None) -> list[dict]:
    """Our step at Kyutai stt-1b-en_fr's size (random weights): the codebook embedding of one frame of Mimi
    codes plus `model.step`, one stream, KV ring full. Memory: weights, KV cache, and resident set."""
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    rss0 = rss_mb()
    model = DSM(DSMConfig(**STT_1B)).eval()
    rows = []
    for dtype in dtypes:
        model.to(getattr(torch, dtype))
        cache = model.new_cache(1)
        fill_cache(cache)
        codes = torch.randint(0, 2048, (1, 32))
        text = torch.full((1,), 3)
        times = []
        with torch.no_grad():
            for _ in range(steps + 2):
                t0 = time.perf_counter()
                model.step(model.frontend.step(codes), text, cache)
                times.append(time.perf_counter() - t0)
        ms = _ms(times[2:])
        rows.append({"benchmark": "stt_1b_size", "dtype": dtype, "threads": torch.get_num_threads(),
                     "n_params": model.n_params, "step_ms_p50": ms["p50"], "step_ms_p90": ms["p90"],
                     "rtf": REALTIME_MS / ms["p50"],
                     "weights_mb": sum(p.nbytes for p in model.parameters()) / 2**20,
                     "kv_cache_mb": cache.nbytes() / 2**20, "rss_mb": rss_mb() - rss0,
                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        del cache
    return rows


def run_all(model, quick: bool = False):
    """Every benchmark, one result dict at a time (so that a long run shows progress)."""
    yield machine()
    yield single_stream(model, seconds=4.0 if quick else 60.0)
    cores = len(os.sched_getaffinity(0))
    sizes = (1, 4, 16) if quick else (1, 2, 4, 8, 16, 32, 64, 128, 160, 192, 200, 224, 256)
    settings = [("float32", 1)] if quick or cores == 1 else [("float32", 1), ("float32", cores), ("bfloat16", cores)]
    for dtype, threads in settings:  # small batches step fastest on one thread
        rows = batch(in_dtype(model, dtype), sizes, steps=3 if quick else 10, threads=threads,
                     stop_after_slow=not quick)
        yield from rows
        yield {"benchmark": "streams_in_realtime", "dtype": dtype, "threads": threads,
               "streams": streams_in_realtime(rows), "largest_batch_measured": rows[-1]["batch_size"]}
    yield from flush(model, delays=(2, 6) if quick else (1, 2, 4, 6, 8, 12, 16, 24, 32),
                     trials=2 if quick else 10, warm_s=1.0 if quick else 3.0)
    yield hook_overhead(model, quick)
    if quick:
        yield {"benchmark": "stt_1b_size", "skipped": "not in --quick (builds a 1 B parameter model)"}
    else:
        yield from stt_1b_size()


def markdown_table(rows, floatfmt: str = ".3f") -> str:
    """A list of dicts (or a DataFrame) as a markdown table (pandas' to_markdown needs tabulate)."""
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        return format(v, floatfmt) if isinstance(v, float) else "" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def format_row(row: dict) -> str:
    """One result as a line of key=value pairs."""
    return "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def run_cli(args) -> int:
    model, which = load_model(args.model)
    if not args.json:
        print(f"model: {which}")
    for row in run_all(model, quick=args.quick):
        row = {"model": which, **row} if row["benchmark"] == "machine" else row
        if args.json:
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        else:
            print(format_row(row), flush=True)
    return 0
