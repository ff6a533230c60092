"""N concurrent real-time clients against `dsm-lab serve`: step lag and word emission latency against N.

    python bench/serve_load.py [--clients 1,8,32,64] [--seconds 20] [--slots 64] [--model M] [--threads 1]

The server runs as its own process (`dsm-lab serve`, one batched step per frame for every client); the
clients run in this one, each an asyncio `lab.remote.AsyncRemoteStream` sending 80 ms of the sample clips
every 80 ms (a microphone's pace), their starts spread over one frame. Measured per client, on its clock:
- step lag: a frame sent -> the Step of that frame back (queueing, the batched step, both sockets);
- word emission latency: the frame holding a word's end sent -> that Word back (the text delay D plus the
  step lag; a local stream has the delay alone, the row `serve_load_local`);
- words exact: whether the client got the very words model.transcribe() gives for its audio.
Writes bench/results/serve_load.jsonl and bench/results/serve_load.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lab  # noqa: E402
import lab.remote  # noqa: E402
from lab import benchmarks  # noqa: E402
from lab.config import FRAME_RATE  # noqa: E402

RESULTS = ROOT / "bench" / "results"
KEY = "bench-key"


def clip(seconds: float) -> np.ndarray:
    """The sample clips one after another, as long as asked."""
    parts = [lab.audio.load_audio(p)[0] for p in sorted(lab.resources.samples_root().glob("*.wav"))]
    audio = np.concatenate(parts)
    reps = int(np.ceil(seconds * 24_000 / len(audio)))
    return np.tile(audio, reps)[: int(seconds * 24_000)].astype(np.float32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lab.cli", "serve", "--port", str(port), "--slots", str(args.slots),
           "--api-key", KEY, "--threads", str(args.threads)] + (["--model", args.model] if args.model else [])
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


def word_latencies_ms(t) -> list[float]:
    """Word arrival - the moment the frame holding its end was sent (both on the client's clock)."""
    sent = t.steps.sent_s.dropna().to_numpy()
    out = []
    for w, arrival in zip(t.words, t.word_arrivals):
        k = min(max(int(w.end_s * FRAME_RATE), 0), len(sent) - 1)
        out.append((arrival - sent[k]) * 1000)
    return out


async def one_client(url: str, audio: np.ndarray, offset_s: float):
    await asyncio.sleep(offset_s)
    return await lab.remote.transcribe_async(url, audio, 24_000, realtime=True, api_key=KEY)


async def run_clients(url: str, n: int, audio: np.ndarray, seed: int):
    rng = random.Random(seed)
    return await asyncio.gather(*[one_client(url, audio, rng.uniform(0, 1 / FRAME_RATE)) for _ in range(n)])


def pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", default="1,8,32,64")
    p.add_argument("--seconds", type=float, default=20.0, help="audio each client streams, in real time")
    p.add_argument("--slots", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the server's model step")
    p.add_argument("--model", default=None)
    p.add_argument("--out", default=str(RESULTS / "serve_load.jsonl"))
    p.add_argument("--figure", default=str(RESULTS / "serve_load.png"))
    args = p.parse_args(argv)
    model = lab.load(args.model)
    audio = clip(args.seconds)
    local = model.transcribe((audio, 24_000))
    expected = [(w.text, w.start_s, w.end_s) for w in local.words]
    local_ms = [(w.emitted_s - (int(w.end_s * FRAME_RATE) + 1) / FRAME_RATE) * 1000 for w in local.words]
    rows = [{**benchmarks.machine(), "model": f"{model.cfg.name} ({args.model or 'embedded'})",
             "server_threads": args.threads, "slots": args.slots},
            {"benchmark": "serve_load_local", "words": len(local.words), "word_latency_ms_p50": pct(local_ms, 50),
             "word_latency_ms_p99": pct(local_ms, 99), "delay_ms": round(model.cfg.delay_s * 1000, 1)}]
    port = free_port()
    server = start_server(args, port)
    try:
        for n in [int(x) for x in args.clients.split(",")]:
            t0 = time.time()
            results = asyncio.run(run_clients(f"ws://127.0.0.1:{port}", n, audio, seed=n))
            lags = np.concatenate([r.steps.lag_ms.dropna().to_numpy() for r in results])
            words = [ms for r in results for ms in word_latencies_ms(r)]
            exact = sum([(w.text, w.start_s, w.end_s) for w in r.words] == expected for r in results)
            row = {"benchmark": "serve_load", "clients": n, "seconds": args.seconds, "steps": int(len(lags)),
                   "step_lag_ms_p50": pct(lags, 50), "step_lag_ms_p99": pct(lags, 99),
                   "step_lag_ms_max": round(float(lags.max()), 1), "words": len(words),
                   "word_latency_ms_p50": pct(words, 50), "word_latency_ms_p99": pct(words, 99),
                   "clients_words_exact": exact, "errors": sum(len(r.errors) for r in results),
                   "wall_s": round(time.time() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    if args.figure:
        figure(rows, args.figure)
    return 0


def figure(rows: list[dict], path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    load = [r for r in rows if r["benchmark"] == "serve_load"]
    local = next(r for r in rows if r["benchmark"] == "serve_load_local")
    n = [r["clients"] for r in load]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for q, style in (("p50", "o-"), ("p99", "s--")):
        a.plot(n, [r[f"step_lag_ms_{q}"] for r in load], style, label=f"step lag {q}")
        b.plot(n, [r[f"word_latency_ms_{q}"] for r in load], style, label=f"served, {q}")
    a.axhline(80, color="grey", lw=0.8, ls=":", label="one frame (80 ms)")
    b.axhline(local["word_latency_ms_p50"], color="green", lw=1, ls=":", label="local stream, p50")
    for ax, title in ((a, "frame sent -> its Step back"), (b, "word's end sent -> the Word back")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(n, [str(x) for x in n])
        ax.set_xlabel("concurrent real-time clients")
        ax.set_ylabel("ms")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
