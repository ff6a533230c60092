"""Acceptance: Kyutai's own client scripts, unchanged, against `dsm-lab serve`.

    python bench/kyutai_clients.py --script PATH/stt_from_file_rust_server.py --python PYTHON \\
        [--mic-script PATH/stt_from_mic_rust_server.py]

PATH is a checkout of kyutai-labs/delayed-streams-modeling (its scripts/ folder; the scripts are not part
of this repository), PYTHON an interpreter with what they need (msgpack, numpy, sphn, websockets; the mic
script also sounddevice). Each sample clip goes through the file script at its default pace (real time);
the words and timestamps it prints are compared with model.transcribe() on the same audio (the script's
second of leading silence, then the clip), times counted from the clip's start on both sides.
With --mic-script, each clip is also played into a private PulseAudio null sink whose monitor is the mic
script's microphone (PulseAudio and paplay, as tests/test_microphone.py uses them; `--show-vad` on, so the
Step.prs path runs too); there the audio goes through two resamplers and starts at an unknown moment, so
the words are scored by WER, not times. Writes bench/results/kyutai_clients.json (with each script's
sha256, to say which version ran).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_TORCH_COMPILE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lab  # noqa: E402
from lab.metrics import wer  # noqa: E402

LEAD_S = 1.0  # the script sends one second of silence before the file
LINE = re.compile(r"^\s*(-?\d+\.\d+) -\s*(-?\d+\.\d+)  (.+)$")  # "   1.12 -   1.20  what"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pulse_microphone(runtime: Path) -> tuple[subprocess.Popen, dict]:
    """A private PulseAudio server whose null sink `dsm_mic` is played into; its monitor is the microphone."""
    sock = runtime / "native"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime), "PULSE_SERVER": f"unix:{sock}",
           "PULSE_SOURCE": "dsm_mic.monitor", "PULSE_SINK": "dsm_mic"}
    proc = subprocess.Popen(["pulseaudio", "--daemonize=no", "--system=false", "-n", "--exit-idle-time=-1",
                             "--disallow-exit", "--use-pid-file=no",
                             f"--load=module-native-protocol-unix socket={sock} auth-anonymous=1",
                             "--load=module-null-sink sink_name=dsm_mic rate=48000 channels=1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode:
        if time.time() > deadline or proc.poll() is not None:
            raise SystemExit("PulseAudio did not start")
        time.sleep(0.2)
    return proc, env


def run_mic_script(args, port: int, wav: Path, env: dict) -> str:
    """The mic script listening to the null sink's monitor while paplay plays `wav` into it: its stdout."""
    find = ("import sounddevice as sd; print(next(i for i, d in enumerate(sd.query_devices()) "
            "if d['name'] == 'pulse' and d['max_input_channels'] > 0))")
    device = subprocess.run([args.python, "-c", find], env=env, capture_output=True, text=True, check=True).stdout
    mic = subprocess.Popen([args.python, str(args.mic_script), "--url", f"ws://127.0.0.1:{port}", "--device",
                            device.strip(), "--show-vad"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    head = []
    while not any("Starting the transcription" in x for x in head):  # connected, microphone open, listening
        line = mic.stdout.readline()
        if not line:
            raise SystemExit(f"the mic script stopped before listening: {''.join(head)}")
        head.append(line)
    time.sleep(0.5)
    subprocess.run(["paplay", "--device=dsm_mic", str(wav)], env=env, check=True)
    time.sleep(2)  # the text delay and a pause
    mic.send_signal(signal.SIGINT)
    return "".join(head) + mic.communicate(timeout=30)[0]


def mic_rows(args, port: int, model) -> list[dict]:
    runtime = Path(tempfile.mkdtemp(prefix="pa-", dir="/tmp"))  # unix socket paths must stay short
    pulse, env = pulse_microphone(runtime)
    rows = []
    try:
        for wav in sorted(lab.resources.samples_root().glob("*.wav")):
            out = run_mic_script(args, port, wav, env)
            line = next((x for x in out.splitlines() if "Interrupted" in x or "|" in x), "")
            heard = line.replace("Interrupted by user", "").replace("|", " ").split()
            local = model.transcribe(wav).text
            rows.append({"clip": wav.name, "script_text": " ".join(heard), "local_text": local,
                         "wer": round(wer(local, " ".join(heard)), 3), "vad_pauses_marked": line.count("|")})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        pulse.terminate()
        pulse.wait(timeout=10)
        shutil.rmtree(runtime, ignore_errors=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--script", required=True, type=Path, help="stt_from_file_rust_server.py of Kyutai")
    p.add_argument("--mic-script", type=Path, default=None, help="stt_from_mic_rust_server.py of Kyutai")
    p.add_argument("--python", default=sys.executable, help="interpreter with the scripts' dependencies")
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
            # the same audio as the script sends: its second of silence, then the clip; times from the clip's start
            audio, rate = lab.audio.load_audio(wav)
            heard = model.transcribe((np.concatenate([np.zeros(round(LEAD_S * rate)), audio]), rate))
            local = [(w.text, round(w.start_s - LEAD_S, 4), None if w.end_s is None else round(w.end_s - LEAD_S, 4))
                     for w in heard.words]
            same_words = [g[0] for g in got] == [w[0] for w in local]
            # a word no EPAD ended (the last one) has no end locally; the script then prints its start twice
            diff = max((max(abs(g[1] - w[1]), 0.0 if w[2] is None else abs(g[2] - w[2])) for g, w in zip(got, local)),
                       default=0.0)
            rows.append({"clip": wav.name, "returncode": run.returncode, "words_script": len(got),
                         "words_local": len(local), "same_words": same_words,
                         "max_time_diff_s": round(diff, 3), "within_one_frame": same_words and diff <= 0.08 + 1e-6})
            print(json.dumps(rows[-1]), flush=True)
        mic = mic_rows(args, port, model) if args.mic_script else []
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {"script": args.script.name, "script_sha256": sha256(args.script), "model": model.cfg.name,
              "clips": rows, "all_within_one_frame": all(r["within_one_frame"] for r in rows)}
    if args.mic_script:
        result.update({"mic_script": args.mic_script.name, "mic_script_sha256": sha256(args.mic_script),
                       "mic_clips": mic})
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["all_within_one_frame"] else 1


if __name__ == "__main__":
    sys.exit(main())
