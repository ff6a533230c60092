"""Kyutai stt-1b-en_fr at full size, without its weights: our loader and step against moshi's, on this CPU.

    python bench/kyutai_vs_moshi.py [--steps 12] [--mimi-frames 25] [--dtypes float32,bfloat16] [--threads 1]

One random checkpoint in the release's format and at the release's size (config.json of stt-1b-en_fr:
d 2048, 16 layers, 16 heads, hidden_scale 4.125, context 750, text_card 8000, 4 VAD heads; bf16 weights on
disk; the real-size random Mimi; an 8000-piece tokenizer) is written once to --workdir and loaded with
`lab.load(folder, dtype=...)`. moshi's LMModel is built on the very same tensors (assigned, not copied:
same values, same memory, so neither side gets a cache advantage), and moshi's Mimi from the same file.

Timed, interleaved step by step so that machine noise hits both alike, one thread each (medians):
- LM step from 32 Mimi codes to a text token: ours = CodebookFrontend + DSM.step + argmax; moshi =
  LMGen.step_with_extra_heads (temperature 0). Both from step 0 (rings not full); ours with a full ring
  (750 keys) is shown too.
- Mimi streaming encode of one 80 ms frame: ours MimiEncoder.encode_step, moshi MimiModel.encode in
  streaming mode (fp32 both: Mimi stays fp32 whatever the LM dtype).
- Our whole Streamer.feed per frame (Mimi + LM + events), to show the model streams.
Memory: LM weights, streaming state (KV rings + Mimi), process RSS. Writes bench/results/kyutai_vs_moshi.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import kyutai_fixtures as fixtures  # noqa: E402
import torch  # noqa: E402

import lab  # noqa: E402
from lab import benchmarks  # noqa: E402
from lab.kyutai import kyutai_name  # noqa: E402

STT_1B = dict(dim=2048, num_layers=16, num_heads=16, context=750, text_card=8000, extra_heads=4, delay_s=0.5)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def state_bytes(module) -> int:
    """Bytes of tensors held in the streaming states of moshi's modules (KV rings, conv buffers...)."""
    total = 0
    for m in module.modules():
        state = getattr(m, "_streaming_state", None)
        for value in vars(state).values() if state is not None else ():
            if isinstance(value, torch.Tensor):
                total += value.nbytes
            elif hasattr(value, "cache") and isinstance(value.cache, torch.Tensor):  # RingKVCache
                total += value.cache.nbytes + value.end_offset.nbytes
    return total


def checkpoint(workdir: Path) -> Path:
    """The random stt-1b-en_fr-size folder (written once, ~2.5 GB, a minute)."""
    folder = workdir / "stt-1b-en_fr-random"
    if (folder / "done").exists():
        return folder
    mimi = workdir / fixtures.MIMI_FILENAME
    if not mimi.exists():
        fixtures.write_random_mimi(mimi, seed=0)
    fixtures.write_random_stt_checkpoint(folder, fixtures.stt_config(**STT_1B), mimi_path=mimi, dtype=torch.bfloat16)
    (folder / "done").write_text("ok\n")
    return folder


def moshi_lm_on(model, config: dict):
    """moshi's LMModel holding our model's tensors (its load hook maps the release names)."""
    from moshi.models.lm import LMModel

    p = next(model.parameters())
    with torch.device("meta"):
        lm = LMModel(device="meta", dtype=p.dtype, **fixtures.moshi_lm_kwargs(config))
    shared = {}
    for name, value in model.state_dict().items():
        if not name.startswith("mimi."):
            shared[kyutai_name(name)] = value.view(1, 1, -1) if name.endswith(".alpha") else value
    lm.load_state_dict(shared, strict=True, assign=True)
    return lm.eval()


def median_ms(xs) -> float:
    return 1e3 * statistics.median(xs)


def clip(n_frames: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(n_frames * 1920) / 24000
    return 0.4 * torch.sin(2 * torch.pi * (200 + 300 * t) * t) + 0.05 * torch.randn(len(t), generator=gen)


@torch.no_grad()
def compare_lm(model, config, codes, steps: int) -> dict:
    """Ours and moshi's LM step, interleaved, from the same codes; tokens compared step by step."""
    from moshi.models import LMGen

    lm = moshi_lm_on(model, config)
    gen = LMGen(lm, temp=0, temp_text=0)
    cache, text = model.new_cache(1), torch.tensor([model.cfg.initial_text_id])
    ours_t, theirs_t, ours_tok, theirs_tok = [], [], [], []
    with gen.streaming(1):
        for k in range(steps + 2):
            c = codes[k % len(codes)]  # (1, 32)
            t0 = time.perf_counter()
            logits, _ = model.step(model.frontend.step(c), text, cache)
            text = logits.argmax(-1)
            t1 = time.perf_counter()
            out, _ = gen.step_with_extra_heads(c[:, :, None])
            t2 = time.perf_counter()
            ours_tok.append(int(text))
            theirs_tok.append(int(out[0, 0, 0]))
            if k >= 2:  # the first steps warm allocators and caches
                ours_t.append(t1 - t0)
                theirs_t.append(t2 - t1)
        moshi_state = state_bytes(lm)
    benchmarks.fill_cache(cache)  # our ring full: attention over all 750 keys
    full = []
    for _ in range(max(3, steps // 2)):
        t0 = time.perf_counter()
        model.step(model.frontend.step(codes[0]), text, cache)
        full.append(time.perf_counter() - t0)
    same = sum(a == b for a, b in zip(ours_tok, theirs_tok))
    del gen, lm
    return {"ours_ms": median_ms(ours_t), "moshi_ms": median_ms(theirs_t), "ours_full_ring_ms": median_ms(full),
            "ours_min_ms": 1e3 * min(ours_t), "moshi_min_ms": 1e3 * min(theirs_t),
            "same_tokens": f"{same}/{len(ours_tok)}", "ours_kv_mib": cache.nbytes() / 2**20,
            "moshi_state_mib": moshi_state / 2**20}


@torch.no_grad()
def compare_mimi(model, mimi_path: Path, audio: torch.Tensor) -> dict:
    theirs = fixtures.moshi_mimi(mimi_path)
    state, ours_t, theirs_t, same = model.mimi.init_state(1), [], [], 0
    frames = audio.split(1920)
    with theirs.streaming(1):
        for k, f in enumerate(frames):
            t0 = time.perf_counter()
            a = model.mimi.encode_step(f[None], state)
            t1 = time.perf_counter()
            b = theirs.encode(f[None, None])
            t2 = time.perf_counter()
            same += bool(torch.equal(a, b[:, :, 0]))
            if k >= 3:
                ours_t.append(t1 - t0)
                theirs_t.append(t2 - t1)
        moshi_state = state_bytes(theirs)
    ours_state = sum(t.nbytes for t in (*state.conv, state.keys, state.values, state.key_pos, state.position))
    return {"ours_ms": median_ms(ours_t), "moshi_ms": median_ms(theirs_t), "same_codes": f"{same}/{len(frames)}",
            "ours_min_ms": 1e3 * min(ours_t), "moshi_min_ms": 1e3 * min(theirs_t),
            "ours_state_mib": ours_state / 2**20, "moshi_state_mib": moshi_state / 2**20}


def stream_ms(model, audio: torch.Tensor) -> float:
    s = model.stream()
    s.feed(audio[:1920 * 2].numpy(), 24000)  # start-up out of the timing
    steps = [e for e in s.feed(audio[1920 * 2:].numpy(), 24000) if isinstance(e, lab.Step)]
    return statistics.median(e.compute_ms for e in steps)


def measure(folder: Path, dtype: str, args) -> dict:
    """One dtype, in a process of its own (so that its peak RSS is its own)."""
    config = json.loads((folder / "config.json").read_text())
    audio = clip(max(args.mimi_frames, args.steps + 2) + 3)
    rss0, t0 = rss_mib(), time.perf_counter()
    model = lab.load(folder, dtype=dtype)
    load_s, rss_loaded = time.perf_counter() - t0, rss_mib()
    lm = {k: v for k, v in model.state_dict().items() if not k.startswith("mimi.")}
    with torch.no_grad():  # the codes both LMs get: our Mimi's, from the clip
        state = model.mimi.init_state(1)
        codes = [model.mimi.encode_step(f[None], state) for f in audio.split(1920)[: args.steps]]
    row = {"dtype": dtype, "n_params_lm": sum(v.numel() for v in lm.values()), "load_s": load_s,
           "weights_mib": sum(v.nbytes for v in lm.values()) / 2**20, "rss_after_load_mib": rss_loaded,
           "rss_load_delta_mib": rss_loaded - rss0, **compare_lm(model, config, codes, args.steps),
           "ours_stream_ms": stream_ms(model, audio[: 1920 * 10])}
    if dtype == "float32":
        row["mimi"] = compare_mimi(model, folder / fixtures.MIMI_FILENAME, audio[: 1920 * args.mimi_frames])
    row["peak_rss_mib"] = peak_rss_mib()
    row["ratio"] = row["ours_ms"] / row["moshi_ms"]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--mimi-frames", type=int, default=25)
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default="/tmp/dsm-lab-kyutai-bench")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "kyutai_vs_moshi.md"))
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one dtype, print it
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    if args.one:
        print("ROW " + json.dumps(measure(checkpoint(workdir), args.one, args)), flush=True)
        return 0
    machine = benchmarks.machine()
    print(json.dumps(machine), flush=True)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    folder = checkpoint(workdir)
    print(f"checkpoint: {folder} ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = []
    for dtype in args.dtypes.split(","):
        cmd = [sys.executable, __file__, "--one", dtype, "--steps", str(args.steps), "--mimi-frames",
               str(args.mimi_frames), "--threads", str(args.threads), "--workdir", str(workdir)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(next(x for x in out.splitlines() if x.startswith("ROW "))[4:]))
        print(json.dumps(rows[-1]), flush=True)
    mimi = next(r["mimi"] for r in rows if "mimi" in r) if any("mimi" in r for r in rows) else None
    write_markdown(Path(args.out), machine, rows, mimi, args)
    return 0


def write_markdown(path: Path, machine: dict, rows: list[dict], mimi: dict | None, args):
    lines = [
        "# Kyutai stt-1b-en_fr size, random weights: dsm-lab vs moshi 0.2.13 (CPU)",
        "",
        f"`python bench/kyutai_vs_moshi.py --steps {args.steps} --mimi-frames {args.mimi_frames} "
        f"--threads {args.threads}`; {machine['cpu']} ({machine['cpu_capability']}), {machine['cores']} cores, "
        f"torch {machine['torch']}, {args.threads} thread(s) for both sides, load average "
        f"{machine['load_avg_1min']:.2f} at start (a shared machine: medians, and minima as the noise-free view). "
        "Same tensors on both sides (moshi's LMModel is assigned our parameters); steps interleaved.",
        "",
        "| dtype | LM params | load (s) | LM step ours / moshi, median (ms) | ratio | min ours / moshi (ms) | "
        "same tokens | ours, ring full (ms) | Streamer.feed / frame (ms) | weights (MiB) | KV ours / moshi (MiB) | "
        "RSS after load, peak (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['n_params_lm'] / 1e9:.3f} B | {r['load_s']:.1f} | {r['ours_ms']:.0f} / "
            f"{r['moshi_ms']:.0f} | **{r['ratio']:.2f}** | {r['ours_min_ms']:.0f} / {r['moshi_min_ms']:.0f} | "
            f"{r['same_tokens']} | {r['ours_full_ring_ms']:.0f} | {r['ours_stream_ms']:.0f} | "
            f"{r['weights_mib']:.0f} | {r['ours_kv_mib']:.0f} / {r['moshi_state_mib']:.0f} | "
            f"{r['rss_after_load_mib']:.0f}, {r['peak_rss_mib']:.0f} |")
    if mimi:
        lines += [
            "",
            "| Mimi encode, one 80 ms frame (fp32) | median ours / moshi (ms) | ratio | min ours / moshi (ms) | "
            "identical codes | state ours / moshi (MiB) |",
            "|---|---|---|---|---|---|",
            f"| streaming, B = 1 | {mimi['ours_ms']:.1f} / {mimi['moshi_ms']:.1f} | "
            f"**{mimi['ours_ms'] / mimi['moshi_ms']:.2f}** | {mimi['ours_min_ms']:.1f} / {mimi['moshi_min_ms']:.1f} | "
            f"{mimi['same_codes']} frames | {mimi['ours_state_mib']:.1f} / {mimi['moshi_state_mib']:.1f} |",
        ]
    lines += [
        "",
        "LM step: 32 codes -> text token (ours: codebook embedding + DSM.step + argmax; moshi: "
        "LMGen.step_with_extra_heads at temperature 0), from step 0, so neither ring is full; 'ring full' is "
        "ours attending over all 750 keys. Streamer.feed adds our Mimi and the events. Each dtype runs in a "
        "process of its own; its RSS holds our LM (shared with moshi's), both Mimis and the runtime; the peak "
        "is while loading (the bf16 file is mapped while the weights are copied out of it).",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(path.read_text())


if __name__ == "__main__":
    sys.exit(main())
