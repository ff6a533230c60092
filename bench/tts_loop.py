"""Closing the loop: the toy text-to-speech model speaks grammar sentences it was never trained on, and the
embedded speech-to-text model writes down what it hears.

    python bench/tts_loop.py [--n 100] [--tts FOLDER] [--stt MODEL]

Three WERs on the same held-out sentences, so that the loss of each part shows:
- espeak-ng itself (the voice the toy model learned), heard by the speech-to-text model: the reference
  (not a ceiling: the recogniser trips on some clean starts of this one voice that it hears fine vocoded);
- espeak-ng's own log-mel frames turned back into sound by Griffin-Lim: what the vocoder costs;
- the toy model's frames, with its own rhythm (it decides when each word starts): the whole loop.
Every sentence is absent from the toy model's training set (its model folder lists the training sentences);
the result records the overlap, which is 0. Writes bench/results/tts_loop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import lab  # noqa: E402
from lab import metrics, tts  # noqa: E402
from lab.tts_loop import held_out_sentences, listen, overlap  # noqa: E402

TARGET_WER = 0.35
KINDS = ("espeak", "vocoded", "toy_tts")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--tts", default=None, help="toy TTS model folder (default: the shipped one)")
    ap.add_argument("--stt", default=None, help="speech-to-text model (default: the embedded one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = tts.load(args.tts)
    stt = lab.load(args.stt)
    folder = Path(args.tts) if args.tts else tts.default_folder()
    sentences = held_out_sentences(args.n, args.seed, folder)
    heard, t0 = [], time.perf_counter()
    for i, s in enumerate(sentences):
        heard.append(listen(model, stt, s))
        print(f"{i + 1}/{len(sentences)} {s.written_text!r} -> {heard[-1].text['toy_tts']!r}", flush=True)
    refs = [s.text for s in sentences]
    out = {"tts_model": folder.name, "stt_model": Path(str(stt.info.source)).name, "voice": model.cfg.voice,
           "sentences": len(sentences), "overlap_with_tts_training": overlap(sentences, folder),
           "held_out": "grammar sentences absent from the toy model's training set (same voice)",
           "tts_training": model.info.get("training", {}), "tts_params": model.n_params,
           "wer": {k: metrics.wer(refs, [h.text[k] for h in heard]) for k in KINDS}, "wer_target": TARGET_WER,
           "all_words_spoken": sum(h.complete for h in heard) / len(heard),
           "mean_duration_s": {k: round(float(np.mean([len(h.audio[k]) / tts.SAMPLE_RATE for h in heard])), 2)
                               for k in ("espeak", "toy_tts")},
           "seconds": round(time.perf_counter() - t0, 1), "load_average_1min": round(os.getloadavg()[0], 2),
           "examples": [{"sentence": h.sentence, **h.text} for h in heard[:8]]}
    results = Path(__file__).resolve().parent / "results"
    (results / "tts_loop.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("sentences", "overlap_with_tts_training", "wer")}, indent=1))


if __name__ == "__main__":
    main()
