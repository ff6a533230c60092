"""How fast does `dsm-lab synth` make a corpus? Items and seconds of audio per wall-clock second.

Writes `--n` items (WAV + JSON, espeak-ng through its C library) into a temporary folder with 1 worker
and with `--workers` workers, and reports the rate of each and the time 10,000 items would take.

    python bench/synth_speed.py [--n 200] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import soundfile as sf  # noqa: E402

from lab.synth import generate_corpus  # noqa: E402


def measure(n: int, workers: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = generate_corpus(Path(tmp) / "corpus", n=n, seed=seed, workers=workers, progress=False)
        wall = time.perf_counter() - t0
        audio_s = 0.0
        for p in paths:
            meta = json.loads(p.read_text())
            audio_s += sf.info(str(p.parent / meta["audio"])).duration
    return {"benchmark": "synth_speed", "items": n, "workers": workers, "wall_s": round(wall, 2),
            "items_per_s": round(n / wall, 1), "audio_s": round(audio_s, 1),
            "audio_s_per_wall_s": round(audio_s / wall, 1), "minutes_for_10000": round(10_000 / (n / wall) / 60, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = [measure(args.n, w, args.seed) for w in sorted({1, args.workers})]
    for r in rows:
        print(json.dumps(r) if args.json else
              f"{r['workers']} worker(s): {r['items']} items ({r['audio_s']:.0f} s of audio) in {r['wall_s']:.1f} s"
              f" = {r['items_per_s']:.1f} items/s, {r['audio_s_per_wall_s']:.0f}x real time;"
              f" 10,000 items in {r['minutes_for_10000']:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
