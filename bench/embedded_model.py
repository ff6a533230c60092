"""Measure the embedded model for its model card: end of turn at a threshold picked on val, load and speed.
(WER, punctuation and emission latency on held-out voices, engines and sentences: bench/voices.py.)

    python bench/embedded_model.py [--model DIR] [--corpus corpus] [--json]

Corpora: `make corpus` (see bench/voices.py). The end-of-turn threshold of each head is picked on corpus/val,
then scored on corpus/test-grammar and corpus/test-heldout-engine, items sharing a sentence with
a training folder (corpus/train*) dropped. Writes bench/results/embedded_model.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import lab
from lab import evaluate
from lab.train import training_sentences

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voices import held_out_paths  # noqa: E402


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

    out = {"model": Path(str(model.info.source)).name, "n_params": model.n_params, "load_s": round(load_s, 3),
           "transcribe_10s_s": round(min(times), 3), "delay_frames": model.cfg.delay_frames}
    train = training_sentences(corpus)
    val = evaluate.run_items(model, held_out_paths(corpus / "val", train, None)[0])
    tests = {name: evaluate.run_items(model, held_out_paths(corpus / name, train, None)[0])
             for name in ("test-grammar", "test-heldout-engine")}
    out["end_of_turn"] = []
    for h in (1.0, 2.0):
        th = evaluate.pick_threshold(evaluate.sweep_semantic(val, h))
        for name, test in tests.items():
            sem = evaluate.sweep_semantic(test, h, thresholds=(th,)).iloc[0].to_dict()
            base = evaluate.matched_silence_baseline(test, sem["latency_p50_s"])
            out["end_of_turn"].append({"set": name, "items": len(test), "head_s": h, "threshold": th, **{
                k: sem[k] for k in ("early_cut_rate", "latency_p50_s", "latency_p90_s", "miss_rate")},
                "baseline_min_silence_s": base["min_silence_s"], "baseline_early_cut_rate": base["early_cut_rate"],
                "baseline_latency_p50_s": base["latency_p50_s"], "baseline_miss_rate": base["miss_rate"]})

    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/embedded_model.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    if args.json:
        print(json.dumps(out, default=float))
        return
    print("| measure | value | target |\n|---|---|---|")
    for e in out["end_of_turn"]:
        print(f"| {e['set']}: {e['head_s']:g} s head > {e['threshold']:.3f} (picked on val): early cuts / p50 "
              f"latency / misses | {100 * e['early_cut_rate']:.1f} % / {e['latency_p50_s']:.2f} s / "
              f"{100 * e['miss_rate']:.1f} % | |")
        print(f"| {e['set']}: silence >= {e['baseline_min_silence_s']:.2f} s (same p50 latency): early cuts / p50 "
              f"| {100 * e['baseline_early_cut_rate']:.1f} % / {e['baseline_latency_p50_s']:.2f} s "
              f"| semantic <= 1/2 of it |")
    print(f"| lab.load() | {out['load_s']:.2f} s | < 2 s |")
    print(f"| transcribe 10 s of audio | {out['transcribe_10s_s']:.2f} s | < 1 s |")


if __name__ == "__main__":
    main()
