"""Training speed of the embedded model's recipe: steps per minute in float32 and in bfloat16 autocast.

    python bench/train_throughput.py [--minutes 4] [--precisions float32,bfloat16] [--threads 1]

Each call adds its (precision, threads) rows to the result file (make model's trial: --threads 1 and 2).

The training budget of `make model` is wall-clock minutes, so steps per minute is what decides how far a
recipe gets on this machine. Each precision trains the embedded model's architecture from scratch with
`lab.train.train` (the real loop: batches made and augmented in a thread beside the model step, which has one
torch thread as in `make model`)
for `--minutes`, and the rate is read from its log. Also timed alone: making one augmented batch (the thread's
share). Writes bench/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import benchmarks  # noqa: E402
from lab.compute import native_bf16  # noqa: E402
from lab.tokenizer import Tokenizer  # noqa: E402
from lab.train import Batches, TrainConfig, load_corpus, train  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def batch_ms(cfg: TrainConfig, tokenizer_path: Path, n: int = 10) -> float:
    items = load_corpus((cfg.corpus,), cfg.max_seconds, ())[:2000]
    make = Batches(items, Tokenizer(tokenizer_path), cfg, seed=0)
    make()
    t0 = time.perf_counter()
    for _ in range(n):
        make()
    return round((time.perf_counter() - t0) / n * 1000, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", action="append", default=None)
    p.add_argument("--minutes", type=float, default=4.0, help="training time per precision")
    p.add_argument("--precisions", default="float32,bfloat16")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the model step (make model: 1; "
                   "the batch thread has the other core)")
    p.add_argument("--out", default=str(RESULTS / "train_throughput.json"))
    args = p.parse_args(argv)
    corpora = args.corpus or [str(ROOT / "corpus" / "train"), str(ROOT / "corpus" / "train-shuffle")]
    corpora = [c for c in corpora if Path(c).is_dir()]
    if not corpora:
        raise SystemExit("no corpus folder: run `make corpus` (or pass --corpus DIR)")
    out = {"machine": benchmarks.machine(), "native_bf16": native_bf16(), "corpora": [Path(c).name for c in corpora],
           "minutes_each": args.minutes, "runs": []}
    if Path(args.out).exists():  # keep the rows of other (precision, threads) pairs: one file, several calls
        out["runs"] = [r for r in json.loads(Path(args.out).read_text())["runs"]
                       if not (r["threads"] == args.threads and r["precision"] in args.precisions.split(","))]
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions.split(","):
            cfg = TrainConfig(corpus=corpora[0], more_corpora=tuple(corpora[1:]), out=f"{tmp}/{precision}",
                              minutes=args.minutes, seed=0, ckpt_every_s=1e9, precision=precision,
                              threads=args.threads)
            train(cfg, log=lambda line: print(line, flush=True))
            log = [json.loads(line) for line in (Path(cfg.out) / "log.jsonl").read_text().splitlines()]
            steps, elapsed = log[-1]["step"], log[-1]["elapsed_s"]
            run = {"precision": precision, "steps": steps, "elapsed_s": elapsed,
                   "steps_per_minute": round(steps / (elapsed / 60), 1),
                   "text_loss_last": round(log[-1]["text_loss"], 3), "batch_size": cfg.batch_size,
                   "threads": args.threads, "load_avg_1min": round(os.getloadavg()[0], 2)}
            out["runs"].append(run)
            print(json.dumps(run), flush=True)
        out["batch_make_ms"] = batch_ms(cfg, Path(cfg.out) / "tokenizer.model")
    out["runs"].sort(key=lambda r: (r["threads"], r["precision"] != "float32"))
    base = next((r for r in out["runs"] if r["precision"] == "float32" and r["threads"] == 1), None)
    for r in out["runs"]:
        r["speedup_vs_float32_1_thread"] = round(r["steps_per_minute"] / base["steps_per_minute"], 2) if base else None
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
