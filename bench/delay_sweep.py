"""WER and emission latency against the text delay D: what each frame of delay buys in accuracy.

Given model folders trained alike but for their delay (e.g. D = 2, 6, 12), streams the held-out corpus
through each (lab.evaluate.run_items: each item plus 3 s of quiet, then flushed) and tabulates, sorted by D:
WER, and the per-word emission latency p50/p90 (lab.metrics: emitted stream time - reference word end; the
model's delay and frame quantisation, without compute, which bench/latency_lab.py adds). Writes a markdown
table to bench/results/delay_sweep.md (and prints it, or JSON lines with --json).

    python bench/delay_sweep.py lab/data/models/dsm-tiny-en runs/dsm-d2/model runs/dsm-d12/model
    python bench/delay_sweep.py MODEL... --dir corpus/test --limit 100 --out bench/results/delay_sweep.md
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


def sweep_row(folder: str, items: str, limit: int | None, progress: bool) -> dict:
    model = lab.load(folder)
    t0 = time.perf_counter()
    results = evaluate.run_items(model, items, limit=limit, progress=progress)
    summary = evaluate.transcription_summary(results)
    lat = np.concatenate([metrics.emission_latencies(r.ref_words, r.words) for r in results])
    D = model.cfg.delay_frames
    return {"model": _short(folder), "delay_frames": D, "delay_s": D / FRAME_RATE, "layers": model.cfg.num_layers,
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


def markdown(rows: list[dict], items: str, command: str) -> str:
    lines = [
        "# WER and emission latency against the text delay D",
        "",
        f"Corpus `{_short(items)}`; each item plus 3 s of quiet, streamed and flushed (lab.evaluate.run_items).",
        "Emission latency: stream time at which a word is emitted - its reference end (no compute time).",
        f"Command: `{command}`",
        "",
        "| model | layers | params (M) | D (frames) | D (s) | items | WER % | latency p50 (s) | latency p90 (s) "
        "| max (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| `{r['model']}` | {r['layers']} | {r['params_m']:.1f} | {r['delay_frames']} | "
                     f"{r['delay_s']:.2f} | {r['items']} | "
                     f"{100 * r['wer']:.1f} | {r['emission_latency_p50_s']:.3f} | "
                     f"{r['emission_latency_p90_s']:.3f} | {r['emission_latency_max_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="model folders (or names lab.load accepts)")
    p.add_argument("--dir", default=str(ROOT / "corpus" / "test"), help="folder of synth items")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "delay_sweep.md"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = sorted((sweep_row(m, args.dir, args.limit, progress=not args.json) for m in args.models),
                  key=lambda r: r["delay_frames"])
    command = "python bench/delay_sweep.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, args.dir, command)
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
