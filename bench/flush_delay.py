"""Flush latency against the text delay D: `Streamer.flush()` (complete the partial frame, step D + 1 frames of
silence at once, close the last word) against its floor (D + 1) x median step time, the real-time wait
D x 80 ms, and Kyutai Unmute's variant (ceil(delay / 0.08) + 1 frames of zeros pushed through feed()).
One stream, one thread; the same weights for every D (only the flush length depends on D).

    python bench/flush_delay.py [--model M] [--delays 1,2,4,6,8,12,16,24,32] [--trials 10] [--json]

Writes the rows to bench/results/latency_flush.jsonl as well.
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
    p.add_argument("--delays", default="1,2,4,6,8,12,16,24,32")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "latency_flush.jsonl"))
    args = p.parse_args(argv)
    model, which = benchmarks.load_model(args.model)
    rows = [{**benchmarks.machine(), "model": which}]
    rows += benchmarks.flush(model, [int(d) for d in args.delays.split(",")], args.trials)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    for r in rows:
        print(json.dumps(r) if args.json else benchmarks.format_row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
