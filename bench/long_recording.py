"""A long two-channel conversation through pre-labelling and the turn lab: wall time and memory.

    python bench/long_recording.py [--minutes 30] [--model M] [--out DIR]

Builds the recording itself, in blocks (never whole in memory): synthetic turns (`lab.synth`, two espeak-ng
voices), speaker A on channel 1 and B on channel 2, alternating, 0.3-1.5 s between turns, each channel with
its own quiet noise floor; beside it the reference item (lab/items/format.py): the words, the turns, every
silence of 100 ms or more labelled (inside a turn "hold", between turns and at the end "shift"). Then:

- **pre-labelling** (`lab.prelabel.prelabel`, the embedded model, Silero VAD) of the raw recording: wall
  time, resident memory sampled after every 10 s block (flat: the last sample against the one after the
  first tenth of the audio), and how many proposed labels agree with the reference;
- **the turn lab** (`lab.evaluate.run_items`) on the reference item, streamed a block at a time, and every
  default policy swept over it, as on a synthetic folder.

The machine's load average (this machine is shared) is written next to the numbers. Writes
bench/results/long_recording.json; `python bench/report.py` renders its table into bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VOICES = ("en+m3", "en-us+f2")  # speaker A, speaker B: two voices the embedded model was trained on
RATE = 24_000


def build_conversation(folder: Path, minutes: float, seed: int = 0) -> Path:
    """Write conversation.wav (two channels) and its reference item conversation.json; return the JSON."""
    from lab import synth
    from lab.items import write_item

    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE)
    words, turns, pauses = [], [], []
    written, k = 0, 0
    with sf.SoundFile(folder / "conversation.wav", "w", RATE, 2, subtype="PCM_16") as out:
        while written < total:
            speaker = k % 2
            audio, meta = synth.synthesize_turn(rng.randrange(2**62), voices=[VOICES[speaker]])
            first, last = meta["words"][0]["start"], meta["words"][-1]["end"]
            cut = audio[max(0, int((first - 0.1) * RATE)): int((last + 0.1) * RATE)]
            offset = written / RATE - max(0.0, first - 0.1)
            gap = int(rng.uniform(0.3, 1.5) * RATE)
            n = min(len(cut) + gap, total - written)
            block = (1e-4 * noise.standard_normal((n, 2))).astype(np.float32)
            block[: min(len(cut), n), speaker] += cut[:n]
            out.write(block)
            said = [w for w in meta["words"] if w["end"] + offset <= (written + n) / RATE]
            name = "AB"[speaker]
            if said and words:  # the silence since the other speaker's last word
                pauses.append({"start": words[-1]["end"], "end": said[0]["start"] + offset, "label": "shift"})
            for a, b in zip(said, said[1:]):
                if b["start"] - a["end"] >= 0.1:
                    pauses.append({"start": a["end"] + offset, "end": b["start"] + offset, "label": "hold"})
            if said:
                words += [{"text": w["text"], "start": w["start"] + offset, "end": w["end"] + offset,
                           "speaker": name} for w in said]
                turns.append({"start": said[0]["start"] + offset, "end": said[-1]["end"] + offset, "speaker": name})
            written += n
            k += 1
    duration = written / RATE
    if duration - words[-1]["end"] >= 0.1:
        pauses.append({"start": words[-1]["end"], "end": duration, "label": "shift"})
    return write_item(folder / "conversation.json", {"audio": "conversation.wav", "speakers": ["A", "B"],
                                                     "words": words, "turns": turns, "pauses": pauses})


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def label_agreement(reference: list[dict], proposed: list[dict]) -> dict:
    """Each reference pause against the proposed pause that overlaps it most: found, and same label."""
    found = same = 0
    for r in reference:
        best, overlap = None, 0.0
        for p in proposed:
            o = min(r["end"], p["end"]) - max(r["start"], p["start"])
            if o > overlap:
                best, overlap = p, o
        if best is not None:
            found += 1
            same += best["label"] == r["label"]
    shifts = [r for r in reference if r["label"] == "shift"]
    return {"reference_pauses": len(reference), "reference_shifts": len(shifts), "proposed_pauses": len(proposed),
            "found": found, "same_label": same, "label_agreement": round(same / max(found, 1), 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default=None, help="folder for the recording (default: a temporary one)")
    ap.add_argument("--result", default=str(RESULTS / "long_recording.json"))
    args = ap.parse_args(argv)

    import torch

    import lab
    from lab import evaluate, turns
    from lab.items import check_item, read_meta
    from lab.prelabel import prelabel

    torch.set_num_threads(1)  # the model and Silero on one thread: the other core is the machine's
    load_start = os.getloadavg()
    folder = Path(args.out or tempfile.mkdtemp(prefix="long-recording-"))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    reference = build_conversation(folder, args.minutes)
    build_s = time.perf_counter() - t0
    ref = read_meta(reference)
    model = lab.load(args.model)
    rss_model = rss_mb()

    samples = []
    t0 = time.perf_counter()
    item = prelabel(model, folder / "conversation.wav", folder / "prelabelled", progress=True,
                    on_block=lambda done: samples.append((done, rss_mb())))
    prelabel_s = time.perf_counter() - t0
    after_tenth = next(m for s, m in samples if s >= ref["duration"] / 10)
    proposed = read_meta(item)

    lab_samples = []
    t0 = time.perf_counter()
    results = evaluate.run_items(model, [reference], progress=True)
    policies = turns.default_policies(model.cfg.eot_horizons_s)
    sweeps = {p.name: evaluate.sweep(results, p) for p in policies}
    lab_samples.append(rss_mb())
    turn_lab_s = time.perf_counter() - t0
    default_points = {p.name: {k: round(float(v), 3) for k, v in evaluate.sweep(results, p, [getattr(
        p, p.sweep_param)]).iloc[0][["early_cut_rate", "latency_p50_s", "miss_rate"]].items()} for p in policies}

    result = {
        "benchmark": "long_recording", "minutes": round(ref["duration"] / 60, 2), "channels": ref["channels"],
        "turns": len(ref["turns"]), "words": len(ref["words"]), "model": model.cfg.name,
        "build_s": round(build_s, 1),
        "prelabel_s": round(prelabel_s, 1), "prelabel_realtime_factor": round(ref["duration"] / prelabel_s, 1),
        "prelabel_target_s": 180,
        "rss_mb_model_loaded": round(rss_model, 1), "rss_mb_after_first_tenth": round(after_tenth, 1),
        "rss_mb_end": round(samples[-1][1], 1), "rss_mb_peak_sampled": round(max(m for _, m in samples), 1),
        "rss_growth_mb_after_first_tenth": round(samples[-1][1] - after_tenth, 1),
        "rss_samples": [[round(s), round(m, 1)] for s, m in samples[:: max(1, len(samples) // 20)]],
        "max_rss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "prelabelled_item_problems": len(check_item(item)),
        "labels": label_agreement(ref["pauses"], proposed["pauses"]),
        "turn_lab_s": round(turn_lab_s, 1), "turn_lab_rss_mb_end": round(lab_samples[-1], 1),
        "turn_lab_policies": len(sweeps), "turn_lab_default_settings": default_points,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": 1,
                    "load_avg_1min_start": round(load_start[0], 2), "load_avg_1min_end": round(os.getloadavg()[0], 2),
                    "note": "shared machine: a model training job ran on it throughout"},
    }
    Path(args.result).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("rss_samples", "turn_lab_default_settings")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
