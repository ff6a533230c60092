"""Acceptance: Kyutai's own client script, unchanged, against `dsm-lab serve`.

    python bench/kyutai_clients.py --script PATH/stt_from_file_rust_server.py --python PYTHON

PATH is a checkout of kyutai-labs/delayed-streams-modeling (its scripts/ folder; the script is not part of
this repository), PYTHON an interpreter with what the script needs (msgpack, numpy, sphn, websockets).
Each sample clip goes through the script at its default pace (real time); the words and timestamps it
prints are compared with model.transcribe() on the same clip, the script's one second of leading silence
taken off. Writes bench/results/kyutai_clients.json (with the script's sha256, to say which version ran).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lab  # noqa: E402

LEAD_S = 1.0  # the script sends one second of silence before the file
LINE = re.compile(r"^\s*(-?\d+\.\d+) -\s*(-?\d+\.\d+)  (.+)$")  # "   1.12 -   1.20  what"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--script", required=True, type=Path, help="stt_from_file_rust_server.py of Kyutai")
    p.add_argument("--python", default=sys.executable, help="interpreter with the script's dependencies")
    p.add_argument("--model", default=None)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "kyutai_clients.json"))
    args = p.parse_args(argv)
    model = lab.load(args.model)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lab.cli", "serve", "--port", str(port), "--slots", "2"]
    cmd += ["--model", args.model] if args.model else []  # no --api-key: public_token, as the script sends
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        deadline = time.time() + 120
        while not port_open(port):
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("dsm-lab serve did not start")
            time.sleep(0.2)
        for wav in sorted(lab.resources.samples_root().glob("*.wav")):
            run = subprocess.run([args.python, str(args.script), str(wav), "--url", f"ws://127.0.0.1:{port}"],
                                 capture_output=True, text=True, timeout=300)
            got = [(m[3], float(m[1]) - LEAD_S, float(m[2]) - LEAD_S)
                   for m in map(LINE.match, run.stdout.splitlines()) if m]
            local = [(w.text, w.start_s, w.end_s) for w in model.transcribe(wav).words]
            same_words = [g[0] for g in got] == [w[0] for w in local]
            diff = max((max(abs(g[1] - w[1]), abs(g[2] - w[2])) for g, w in zip(got, local)), default=0.0)
            rows.append({"clip": wav.name, "returncode": run.returncode, "words_script": len(got),
                         "words_local": len(local), "same_words": same_words,
                         "max_time_diff_s": round(diff, 3), "within_one_frame": same_words and diff <= 0.08 + 1e-6})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {"script": args.script.name, "script_sha256": hashlib.sha256(args.script.read_bytes()).hexdigest(),
              "model": model.cfg.name, "clips": rows, "all_within_one_frame": all(r["within_one_frame"] for r in rows)}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["all_within_one_frame"] else 1


if __name__ == "__main__":
    sys.exit(main())
