"""End-of-turn failure probes on the embedded model (or --model): `dsm-lab probes`, written to a result file.

    python bench/probes.py [--n 30] [--model M] [--out bench/results/probes.jsonl]

One JSON object a line per (probe kind, policy), as `dsm-lab probes --json` prints them, after a first line
saying which model and how many turns. Rerun it when the model changes; `python bench/report.py` then
rewrites the table in bench/README.md.
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
from lab.probes import run_probes  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=30, help="turns per probe kind")
    p.add_argument("--model", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "probes.jsonl"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = lab.load(args.model)
    t0 = time.perf_counter()
    table, _ = run_probes(model, n=args.n, seed=args.seed)
    head = {"benchmark": "probes_run", "model": model.cfg.name, "n": args.n, "seed": args.seed,
            "seconds": round(time.perf_counter() - t0, 1)}
    lines = [json.dumps(head)]
    for row in table.to_dict("records"):
        lines.append(json.dumps({"benchmark": "probes", **{k: (round(v, 4) if np.isfinite(v) else None)
                                 if isinstance(v, float) else v for k, v in row.items()}}))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
