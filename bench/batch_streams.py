"""Streams in real time against batch size: one `Streamer.feed()` stepping B streams by one 80 ms frame
(frontend, model, events), KV rings full (steady state). B streams run in real time while that takes < 80 ms.

    python bench/batch_streams.py [--model M] [--sizes 1,8,64,128,200,256] [--threads 1,all] [--dtype float32]
                                  [--steps 10] [--json]

Writes the rows to bench/results/latency_batch.jsonl as well.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import benchmarks  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--sizes", default="1,2,4,8,16,32,64,128,160,192,200,224,256")
    p.add_argument("--threads", default="1,all", help="comma list of thread counts; 'all' = every core")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--dtype", default="float32", help="run a copy of the model in this dtype (e.g. bfloat16)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "latency_batch.jsonl"))
    args = p.parse_args(argv)
    model, which = benchmarks.load_model(args.model)
    model = benchmarks.in_dtype(model, args.dtype)
    cores = len(os.sched_getaffinity(0))
    rows = [{**benchmarks.machine(), "model": which}]
    for t in dict.fromkeys(cores if x == "all" else int(x) for x in args.threads.split(",")):
        batch = benchmarks.batch(model, [int(s) for s in args.sizes.split(",")], args.steps, threads=t)
        rows += batch + [{"benchmark": "streams_in_realtime", "threads": t, "dtype": args.dtype,
                          "streams": benchmarks.streams_in_realtime(batch)}]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    for r in rows:
        print(json.dumps(r) if args.json else benchmarks.format_row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
