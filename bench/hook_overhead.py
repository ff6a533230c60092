"""What do the hook points cost when nobody records? Single-stream `model.step()` time, three ways:

  (a) hooks      the model as shipped, nothing recorded: each HookPoint.fire is one `if self.fns` test
  (b) no-op      the same model with HookPoint.fire replaced by a no-op at the class level, so (a) - (b) is
                 the cost of those tests (a model where hooks never existed cannot be built from the same code)
  (c) attention  with every attention pattern recorded (the explicit softmax path instead of the fused one)

The variants run interleaved, repeat after repeat, each on its own warm cache past the context (steady state);
the figure is the median step time. Target: (a) within 2 % of (b). Machine noise on a busy computer can be
larger than the difference, so the table also gives a direct estimate: the time of one `fire()` with nothing
attached, measured in a tight loop, times the number of hook points a step passes.

    python bench/hook_overhead.py [--quick] [--json] [--threads N] [--out bench/results/hook_overhead.jsonl]

With --out the JSON row is also written to that file (bench/report.py reads results/hook_overhead.jsonl
before the row of `dsm-lab bench` in results/latency_bench.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lab.hook_bench import bench_model, run  # noqa: E402, F401  (bench_model: memory_soak.py imports it from here)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one stream, small matrices)")
    p.add_argument("--out", default=None, help="also write the JSON row to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats, steps = (5, 100) if args.quick else (20, 400)

    model, which = bench_model()
    result = run(model, repeats, steps)
    med = result["median_step_ms"]
    print(f"model: {which}")
    print(f"torch {torch.__version__}, {args.threads} thread(s); {repeats} interleaved repeats x {steps} steps "
          f"per variant; {result['hook_points']} hook points")
    print(f"{'variant':<34}{'median step (ms)':>18}{'vs no-op':>10}")
    rows = [("(a) hooks, nothing recorded", "hooks"), ("(b) HookPoint.fire = no-op", "no-op"),
            ("(c) attention patterns recorded", "attention")]
    for label, v in rows:
        print(f"{label:<34}{med[v]:>18.4f}{100 * (med[v] - med['no-op']) / med['no-op']:>+9.2f}%")
    print(f"direct estimate: one fire() with nothing attached = {result['fire_cost_us']:.3f} us; "
          f"x {result['hook_points']} per step = {result['estimated_overhead_pct']:.3f} % of a step")
    ok = result["overhead_nothing_recorded_pct"] <= 2.0
    print(f"overhead with nothing recorded: {result['overhead_nothing_recorded_pct']:+.2f} % measured "
          f"(target <= 2 %: {'met' if ok else 'NOT met'})")
    row = {"benchmark": "hook_overhead", "model": which, "threads": args.threads, "target_met": ok, **result}
    if args.json:
        print(json.dumps(row))
    if args.out:
        Path(args.out).write_text(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
