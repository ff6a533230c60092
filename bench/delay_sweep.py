"""WER and emission latency against the text delay D: what each frame of delay buys in accuracy.

Given model folders trained alike but for their delay (e.g. D = 2, 6, 12: `make sweep`), streams held-out
test sets through each (lab.evaluate.run_items: each item plus 3 s of quiet, then flushed) and tabulates, per
set and sorted by D: WER, and the per-word emission latency p50/p90 (lab.metrics: emitted stream time -
reference word end; the model's delay and frame quantisation, without compute, which bench/latency_lab.py
adds). As in bench/voices.py, every test item that shares a sentence with a training folder (corpus/train*)
is dropped first. Writes a markdown table to bench/results/delay_sweep.md (and prints it, or JSON lines with
--json).

    python bench/delay_sweep.py dsm-tiny-en-d2 dsm-tiny-en-d6 dsm-tiny-en-d12
    python bench/delay_sweep.py MODEL... --set test-grammar --limit 100 --out FILE
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import lab  # noqa: E402
from lab import evaluate, metrics  # noqa: E402
from lab.model import FRAME_RATE  # noqa: E402
from lab.train import training_sentences  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from voices import held_out_paths  # noqa: E402

SETS = ["test-grammar", "test-heldout-engine", "test-shuffle-heldout-voices"]


def sweep_row(folder: str, model, name: str, paths: list[Path], progress: bool) -> dict:
    t0 = time.perf_counter()
    results = evaluate.run_items(model, paths, progress=progress)
    summary = evaluate.transcription_summary(results)
    lat = np.concatenate([metrics.emission_latencies(r.ref_words, r.words) for r in results])
    D = model.cfg.delay_frames
    return {"set": name, "model": _short(folder), "delay_frames": D, "delay_s": D / FRAME_RATE,
            "layers": model.cfg.num_layers,
            "params_m": model.n_params / 1e6, "items": summary["items"],
            "words_matched": int(len(lat)), "wer": summary["wer"],
            "emission_latency_p50_s": summary["emission_latency_p50_s"],
            "emission_latency_p90_s": summary["emission_latency_p90_s"],
            "emission_latency_max_s": float(lat.max()) if len(lat) else float("nan"),
            "seconds": time.perf_counter() - t0}


def _short(path) -> str:
    """A path relative to the repository when it is inside it (tables stay readable)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def markdown(rows: list[dict], corpus: Path, dropped: dict, command: str) -> str:
    lines = [
        "# WER and emission latency against the text delay D",
        "",
        f"Test sets under `{_short(corpus)}` (bench/voices.py describes them); every item sharing a sentence with "
        "a training folder dropped first (" + ", ".join(f"{k}: {v}" for k, v in dropped.items()) + " dropped). "
        "Each item plus 3 s of quiet, streamed and flushed (lab.evaluate.run_items).",
        "Emission latency: stream time at which a word is emitted - its reference end (no compute time).",
        f"Command: `{command}`",
        "",
        "| set | model | layers | params (M) | D (frames) | D (s) | items | WER % | latency p50 (s) "
        "| latency p90 (s) | max (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['set']} | `{r['model']}` | {r['layers']} | {r['params_m']:.1f} | {r['delay_frames']} | "
                     f"{r['delay_s']:.2f} | {r['items']} | "
                     f"{100 * r['wer']:.1f} | {r['emission_latency_p50_s']:.3f} | "
                     f"{r['emission_latency_p90_s']:.3f} | {r['emission_latency_max_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="model folders (or names lab.load accepts)")
    p.add_argument("--corpus", default=str(ROOT / "corpus"), help="root of the test sets and training folders")
    p.add_argument("--set", dest="sets", action="append", default=None,
                   help=f"test set folder under --corpus (repeatable; default {', '.join(SETS)})")
    p.add_argument("--limit", type=int, default=None, help="at most this many items per set")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "delay_sweep.md"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    corpus = Path(args.corpus)
    train = training_sentences(corpus)
    if not train:
        raise SystemExit(f"no training corpus in {corpus} (train*): the overlap cannot be checked")
    models = {m: lab.load(m) for m in args.models}  # loaded once, streamed over every set
    rows, dropped = [], {}
    for name in args.sets or SETS:
        if not (corpus / name).is_dir():
            raise SystemExit(f"missing test set {corpus / name}: make corpus")
        paths, dropped[name], overlap = held_out_paths(corpus / name, train, args.limit)
        if overlap:  # held_out_paths drops every shared sentence; a nonzero count is a bug, not a result
            raise SystemExit(f"{name}: {overlap} sentences shared with training after de-duplication")
        rows += sorted((sweep_row(m, model, name, paths, progress=not args.json) for m, model in models.items()),
                       key=lambda r: r["delay_frames"])
    command = "python bench/delay_sweep.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, corpus, dropped, command)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
