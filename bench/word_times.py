"""Word start and end error of the embedded model against the reference alignment, for two end rules.

    python bench/word_times.py [--model NAME] [--clips DIR_OR_GLOB]

The text stream marks word starts only (EPAD before each word). Rules for a word's end:
  `next_epad`  Kyutai's server (moshi-core asr.rs `EndWord`): the next EPAD, dated like starts (lab's rule)
  `pieces`     the step after its last piece (start + pieces x 80 ms): lab's former rule
Writes bench/results/word_times.json. The model card's numbers come from bench/embedded_model.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import lab
from lab import evaluate, metrics
from lab.config import FRAME_RATE
from lab.resources import samples_root


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="dsm-tiny-en")
    ap.add_argument("--clips", default=None, help="a folder of NAME.json + NAME.wav (default: the shipped samples)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = lab.load(args.model)
    source = Path(args.clips) if args.clips else sorted(samples_root().glob("*.json"))
    results = evaluate.run_items(model, source, tail_s=1.0)
    start, end_epad, end_pieces, n = [], [], [], 0
    for r in results:
        steps = r.steps["token"].tolist()
        for i, j in metrics.match_words([w["text"] for w in r.ref_words], [w.text for w in r.words]):
            ref, w = r.ref_words[i], r.words[j]
            n += 1
            start.append(abs(w.start_s - ref["start"]))
            if w.end_s is not None:
                end_epad.append(abs(w.end_s - ref["end"]))
            # the former rule: the step that completed the word (first token after its pieces)
            first = int(round((w.start_s + model.cfg.delay_s) * FRAME_RATE))
            k = first
            while k < len(steps) and model.tokenizer.is_text(steps[k]) and (k == first or not
                                                                             model.tokenizer.starts_word(steps[k])):
                k += 1
            end_pieces.append(abs(k / FRAME_RATE - model.cfg.delay_s - ref["end"]))
    out = {"model": args.model, "clips": [r.name for r in results], "matched_words": n,
           "start_error_ms": round(1000 * float(np.mean(start)), 1),
           "end_error_ms": {"next_epad": round(1000 * float(np.mean(end_epad)), 1),
                            "pieces": round(1000 * float(np.mean(end_pieces)), 1)},
           "ends_known_next_epad": round(len(end_epad) / n, 3),
           "end_error_ms_median": {"next_epad": round(1000 * float(np.median(end_epad)), 1),
                                   "pieces": round(1000 * float(np.median(end_pieces)), 1)}}
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/word_times.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
