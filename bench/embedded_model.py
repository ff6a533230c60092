"""Measure the embedded model for its model card: WER, emission latency, end of turn, load and speed.

    python bench/embedded_model.py [--model DIR] [--corpus corpus] [--json]

Corpora (made with `dsm-lab synth`, seeds never used in training; the model was trained on seed 1):
  corpus/val            --n 200 --seed 2 --exclude-voice en+f3   (end-of-turn threshold is picked here)
  corpus/test           --n 300 --seed 3 --exclude-voice en+f3
  corpus/heldout-voice  --n 150 --seed 4 --voice en+f3           (a voice variant left out of training)
Writes bench/results/embedded_model.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import lab
from lab import evaluate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    corpus = Path(args.corpus)

    t0 = time.perf_counter()
    model = lab.load(args.model)
    load_s = time.perf_counter() - t0
    ten_s = np.random.default_rng(0).standard_normal(10 * 24_000).astype(np.float32) * 0.01
    model.transcribe((ten_s, 24_000))  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.transcribe((ten_s, 24_000))
        times.append(time.perf_counter() - t0)

    out = {"model": model.info.source, "n_params": model.n_params, "load_s": round(load_s, 3),
           "transcribe_10s_s": round(min(times), 3), "delay_frames": model.cfg.delay_frames}
    test = evaluate.run_items(model, corpus / "test")
    heldout = evaluate.run_items(model, corpus / "heldout-voice")
    val = evaluate.run_items(model, corpus / "val")
    out["test"] = evaluate.transcription_summary(test)
    out["heldout_voice"] = evaluate.transcription_summary(heldout)
    out["end_of_turn"] = []
    for h in (1.0, 2.0):
        th = evaluate.pick_threshold(evaluate.sweep_semantic(val, h))
        sweep = evaluate.sweep_semantic(test, h, thresholds=(th,))
        sem = sweep.iloc[0].to_dict()
        base = evaluate.matched_silence_baseline(test, sem["latency_p50_s"])
        out["end_of_turn"].append({"head_s": h, "threshold": th, **{k: sem[k] for k in (
            "early_cut_rate", "latency_p50_s", "latency_p90_s", "miss_rate")},
            "baseline_min_silence_s": base["min_silence_s"], "baseline_early_cut_rate": base["early_cut_rate"],
            "baseline_latency_p50_s": base["latency_p50_s"], "baseline_miss_rate": base["miss_rate"]})

    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/embedded_model.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    if args.json:
        print(json.dumps(out, default=float))
        return
    t, hv = out["test"], out["heldout_voice"]
    print("| measure | value | target |\n|---|---|---|")
    print(f"| WER, held-out turns (seed 3, {t['items']} items) | {100 * t['wer']:.2f} % | <= 4 % |")
    print(f"| WER, held-out voice en+f3 (seed 4, {hv['items']} items) | {100 * hv['wer']:.2f} % | <= 10 % |")
    print(f"| emission latency p50 / p90 | {t['emission_latency_p50_s']:.3f} / {t['emission_latency_p90_s']:.3f} s"
          f" | p50 <= {model.cfg.delay_frames * 0.08 + 0.2:.2f} s |")
    for e in out["end_of_turn"]:
        print(f"| end of turn, {e['head_s']:g} s head > {e['threshold']:.3f}: early cuts / p50 latency / misses "
              f"| {100 * e['early_cut_rate']:.1f} % / {e['latency_p50_s']:.2f} s / {100 * e['miss_rate']:.1f} % | |")
        print(f"| silence baseline >= {e['baseline_min_silence_s']:.2f} s (same p50 latency): early cuts / p50 "
              f"| {100 * e['baseline_early_cut_rate']:.1f} % / {e['baseline_latency_p50_s']:.2f} s "
              f"| semantic <= 1/3 of it |")
    print(f"| lab.load() | {out['load_s']:.2f} s | < 2 s |")
    print(f"| transcribe 10 s of audio | {out['transcribe_10s_s']:.2f} s | < 1 s |")


if __name__ == "__main__":
    main()
