"""How many streams of a Kyutai stt-1b-en_fr-size model step in real time on one CUDA GPU?

Our DSM at the 1B size (d 2048, 16 layers, 16 heads, FFN 5632, context 750, 8000 text tokens, 32 Mimi
codebooks), random weights, bf16. For each batch size B (1, 2, 4, ... 512 by default): one step = the
codebook embedding of a frame of Mimi codes for each stream + `model.step()` over all B streams, with every
KV ring full (steady state, as after the first 60 s of a stream). The step time is the median over
`--steps` steps, timed with CUDA events. B streams run in real time while a step takes < 80 ms. With
`--mimi`, each step also runs our streaming Mimi encoder (random weights, fp32, as `lab.load` runs it) on one
80 ms frame of audio per stream, as Kyutai's server does on the GPU: audio in, text token out. Never
included: the Python of `lab.stream` (events, words).

Needs only torch and this repository:

    python bench/gpu_streams.py                  # prints one JSON object (and progress on stderr)
    python bench/gpu_streams.py --sizes 1,64,256 --steps 20 --dtype float16
    python bench/gpu_streams.py --mimi           # audio in: Mimi encoder + LM step
    python bench/gpu_streams.py --device cpu --tiny   # a smoke run of the script itself, anywhere
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lab.mimi import MimiEncoder  # noqa: E402
from lab.model import DSM, FRAME_SIZE, DSMConfig  # noqa: E402

STT_1B = dict(d_model=2048, num_layers=16, num_heads=16, ffn_hidden=5632, context=750, text_vocab_out=8000,
              text_vocab_in=8001, audio_input="codebooks", n_codebooks=32, codebook_card=2048, delay_frames=7,
              text_delay_s=0.5, max_period=100_000.0, name="stt-1b-en_fr-size")
TINY = dict(STT_1B, d_model=64, num_layers=2, num_heads=4, ffn_hidden=128, context=32, name="tiny")
REALTIME_MS = 80.0


def fill_cache(cache):
    """Every stream's ring holds a full context of past steps (steady state)."""
    C = cache.context
    cache.positions.copy_(torch.arange(C, 2 * C, device=cache.positions.device).expand_as(cache.positions))
    cache.next_pos.fill_(2 * C)


def time_batch(model, B: int, steps: int, device, mimi: MimiEncoder | None = None) -> dict:
    cache = model.new_cache(B)
    fill_cache(cache)
    codes = torch.randint(0, model.cfg.codebook_card, (B, model.cfg.n_codebooks), device=device)
    if mimi is not None:
        mimi_state = mimi.init_state(B)
        audio = 0.1 * torch.randn(steps + 3, B, FRAME_SIZE, device=device)
    text = torch.full((B,), model.cfg.pad_id, device=device)
    times = []
    with torch.no_grad():
        for k in range(steps + 3):  # the first steps warm up kernels and the allocator
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
            t0 = time.perf_counter()
            if mimi is not None:
                codes = mimi.encode_step(audio[k], mimi_state)
            logits, _ = model.step(model.frontend.step(codes), text, cache)
            text = logits.argmax(-1)  # as a server does: the next step reads this step's tokens
            if device.type == "cuda":
                end.record()
                end.synchronize()
                ms = start.elapsed_time(end)
            else:
                ms = (time.perf_counter() - t0) * 1e3
            if k >= 3:
                times.append(ms)
    row = {"batch_size": B, "step_ms_p50": statistics.median(times), "step_ms_max": max(times),
           "kv_cache_gib": cache.nbytes() / 2**30}
    if device.type == "cuda":
        row["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    row["realtime"] = row["step_ms_p50"] < REALTIME_MS
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1,2,4,8,16,32,64,128,192,256,320,384,448,512")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a tiny model (to check the script, not the GPU)")
    p.add_argument("--keep-going", action="store_true", help="measure sizes past the first that is too slow")
    p.add_argument("--mimi", action="store_true", help="audio in: run the Mimi encoder in each step too")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device (torch.cuda.is_available() is False)"}))
        return 1
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    cfg = DSMConfig(**(TINY if args.tiny else STT_1B))
    with device:  # initialise the random weights where they will live (fast on a GPU, no 4 GB on the host)
        model = DSM(cfg)
    model = model.to(dtype=getattr(torch, args.dtype)).eval()
    mimi = None
    if args.mimi:
        with device:
            mimi = MimiEncoder().eval()  # fp32, like lab.load: bf16 changes most codes
    rows, error = [], None
    for B in [int(s) for s in args.sizes.split(",")]:
        try:
            row = time_batch(model, B, args.steps, device, mimi)
        except torch.cuda.OutOfMemoryError as e:
            error = f"batch {B}: out of memory ({str(e).splitlines()[0]})"
            break
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
        rows.append(row)
        print(f"B={B:4d}  step {row['step_ms_p50']:8.2f} ms  {'real time' if row['realtime'] else 'too slow'}",
              file=sys.stderr, flush=True)
        if not row["realtime"] and not args.keep_going:
            break
    result = {
        "benchmark": "gpu_streams", "model": cfg.name, "n_params": model.n_params, "dtype": args.dtype,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "steps_per_size": args.steps,
        "streams_in_realtime": max((r["batch_size"] for r in rows if r["realtime"]), default=0),
        "includes": ("Mimi encoder (fp32) + " if mimi is not None else "") +
                    "codebook embedding + model.step (not lab.stream events)",
        "rows": rows, "stopped": error,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
