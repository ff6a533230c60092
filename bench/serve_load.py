"""N concurrent real-time clients against `dsm-lab serve`: step lag and word emission latency against N.

    python bench/serve_load.py [--clients 1,8,32,64] [--seconds 20] [--slots 64] [--model M] [--threads 1]
                               [--dtypes float32,bfloat16] [--precision-items 60]

The server runs as its own process (`dsm-lab serve`, one batched step per frame for every client); the
clients run in this one (lab/serve/load.py says what is measured), each sending the sample clips in real
time. Each `--dtypes` value is a server of its own (`dsm-lab serve --dtype`): bfloat16 halves what a step
reads from the KV cache and the weights. Whether that costs accuracy is measured, not assumed: a precision row
transcribes held-out items (corpus/test-heldout-engine, corpus/test-shuffle-heldout-voices) with each dtype.
Writes bench/results/serve_load.jsonl and bench/results/serve_load.png.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lab  # noqa: E402
from lab import benchmarks  # noqa: E402
from lab.serve import load  # noqa: E402
from lab.widgets import latency_figures  # noqa: E402

RESULTS = ROOT / "bench" / "results"
KEY = "bench-key"
# Held out from training entirely: another engine (FreeTTS), and voices never heard (bench/voices.py).
PRECISION_SETS = ("test-heldout-engine", "test-shuffle-heldout-voices")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_info(port: int, last: int = 1000) -> dict:
    """The server's /api/modules_info: its model step time and streams per step over its `last` steps."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/modules_info?last={max(last, 1)}") as r:
        return json.loads(r.read())[0]


def start_server(args, port: int, dtype: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lab.cli", "serve", "--port", str(port), "--slots", str(args.slots),
           "--api-key", KEY, "--threads", str(args.threads), "--dtype", dtype] + (
               ["--model", args.model] if args.model else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}: {' '.join(cmd)}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not open its port within 120 s")


def precision_row(args, dtypes: list[str]) -> dict:
    """Does serving in bfloat16 cost accuracy? Held-out items (an engine and voices never trained on)
    through each dtype's model.transcribe(): WER, and how many transcripts equal float32's word for word."""
    from lab import evaluate

    row = {"benchmark": "serve_precision", "sets": list(PRECISION_SETS), "limit_per_set": args.precision_items}
    folders = [Path(args.corpus) / name for name in PRECISION_SETS]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing or args.precision_items <= 0:
        why = f"missing {', '.join(missing)} (make corpus)" if missing else "--precision-items 0"
        return {**row, "not_measured": why}
    paths = [p for f in folders for p in evaluate.item_paths(f, limit=args.precision_items)]
    texts = {}
    for dtype in dtypes:
        results = evaluate.run_items(lab.load(args.model, dtype=dtype), paths)
        row[f"wer_{dtype}"] = round(evaluate.transcription_summary(results)["wer"], 4)
        texts[dtype] = [r.hypothesis for r in results]
    row["items"] = len(paths)
    for dtype in dtypes[1:]:
        row[f"same_text_{dtype}"] = sum(a == b for a, b in zip(texts[dtypes[0]], texts[dtype]))
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", default="1,8,32,64")
    p.add_argument("--seconds", type=float, default=20.0, help="audio each client streams, in real time")
    p.add_argument("--slots", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the server's model step")
    p.add_argument("--dtypes", default="float32,bfloat16", help="`dsm-lab serve --dtype` values, run in turn")
    p.add_argument("--model", default=None)
    p.add_argument("--corpus", default=str(ROOT / "corpus"), help="held-out sets for the precision row")
    p.add_argument("--precision-items", type=int, default=60, help="items per held-out set (0: skip)")
    p.add_argument("--out", default=str(RESULTS / "serve_load.jsonl"))
    p.add_argument("--figure", default=str(RESULTS / "serve_load.png"))
    args = p.parse_args(argv)
    dtypes = args.dtypes.split(",")
    audio = load.clip(args.seconds)
    rows = [{**benchmarks.machine(), "server_threads": args.threads, "slots": args.slots}]
    first_words = None  # the first dtype's words: every server's clients are also compared with them
    for dtype in dtypes:
        model = lab.load(args.model, dtype=dtype)
        rows[0].setdefault("model", f"{model.cfg.name} ({args.model or 'embedded'})")
        local, expected = load.local_row(model, audio)
        first_words = expected if first_words is None else first_words
        rows.append({**local, "dtype": dtype})
        port = free_port()
        server = start_server(args, port, dtype)
        try:
            for n in [int(x) for x in args.clients.split(",")]:
                before = server_info(port)["steps"]
                row = load.measure(f"ws://127.0.0.1:{port}", n, audio, expected, api_key=KEY,
                                   also={dtypes[0]: first_words})
                info = server_info(port, last=server_info(port)["steps"] - before)  # the server's side of this run
                row.update({f"server_{k}": info[k] for k in ("step_ms_p50", "step_ms_p99", "streams_per_step_mean")})
                row["dtype"] = info["dtype"]
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    rows.append(precision_row(args, dtypes))
    print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    if args.figure:
        latency_figures.serve_load_figure(rows).savefig(args.figure, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
