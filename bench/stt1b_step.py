"""Our step at Kyutai stt-1b-en_fr's size (d 2048, 16 layers, 16 heads, FFN 5632, context 750, 8000 text
tokens, 32 codebooks), random weights, on this CPU: one stream, KV ring full, fp32 and bf16; weights, KV
cache and resident memory. (The Kyutai loader and the comparison with moshi are bench/kyutai_vs_moshi.py.)

    python bench/stt1b_step.py [--dtypes float32,bfloat16] [--steps 10] [--threads N] [--json]

Writes the rows to bench/results/latency_stt1b.jsonl as well.
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
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="default: every core")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "latency_stt1b.jsonl"))
    args = p.parse_args(argv)
    rows = [benchmarks.machine()] + benchmarks.stt_1b_size(args.dtypes.split(","), args.steps, args.threads)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    for r in rows:
        print(json.dumps(r) if args.json else benchmarks.format_row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
