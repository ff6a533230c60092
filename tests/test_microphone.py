"""The local microphone (sounddevice / PortAudio) against a real virtual microphone: PulseAudio's null sink.

How it runs, with nothing mocked:
- a private PulseAudio daemon is started by the test (as root it warns but runs in user mode with
  `--system=false`), in the foreground as our child (`--daemonize=no`), with no default script (`-n`): it loads
  only `module-native-protocol-unix` (anonymous auth, a socket in a short temp dir) and
  `module-null-sink sink_name=dsm_mic`;
- PortAudio reaches it through ALSA's "pulse" device (libasound2-plugins); `PULSE_SERVER` points at the
  socket and `PULSE_SOURCE=dsm_mic.monitor` makes the sink's monitor the recording source;
- `paplay --device=dsm_mic` plays a sample into the sink; our `LocalMicrophone` reads the monitor in real
  time; the model transcribes it; the sample's words must come out.
PortAudio reads the device list when it initialises, so the test re-initialises it once the server is up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import torch

import lab
from lab.metrics import normalize
from lab.widgets import LiveTranscriber, LocalMicrophone, Microphone, NoInputDevice, sample
from lab.widgets.sources import input_devices, resolve_source

SAMPLE = "lights"
SINK = "dsm_mic"


@pytest.fixture(scope="module")
def embedded_model():
    """The embedded model, on one thread: real time needs 80 ms a step, and a 5 M model on a shared
    2-core machine is faster on one thread than fighting for two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield lab.load()
    torch.set_num_threads(threads)


def reinit_portaudio():
    """PortAudio lists devices once, at initialisation: start it again to see the sound server's devices."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


@pytest.fixture
def pulse(monkeypatch):
    """A private PulseAudio server with a null sink `dsm_mic`; yields the environment that reaches it."""
    for tool in ("pulseaudio", "paplay", "pactl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: the Makefile installs pulseaudio and pulseaudio-utils")
    runtime = Path(tempfile.mkdtemp(prefix="pa-", dir="/tmp"))  # unix socket paths must stay short
    socket = runtime / "native"
    env = {"XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime), "PULSE_SERVER": f"unix:{socket}",
           "PULSE_SOURCE": f"{SINK}.monitor", "PULSE_SINK": SINK}
    cmd = ["pulseaudio", "--daemonize=no", "--system=false", "-n", "--exit-idle-time=-1", "--disallow-exit",
           "--use-pid-file=no", "--log-target=stderr", f"--load=module-native-protocol-unix socket={socket} "
           "auth-anonymous=1", f"--load=module-null-sink sink_name={SINK} rate=48000 channels=1"]
    log = (runtime / "pulse.log").open("w")
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], env={**os.environ, **env}, capture_output=True).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PulseAudio did not start: {(runtime / 'pulse.log').read_text()[-2000:]}")
            time.sleep(0.2)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        reinit_portaudio()
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        monkeypatch.undo()
        reinit_portaudio()  # back to this machine's own devices for the tests that follow
        shutil.rmtree(runtime, ignore_errors=True)


def test_no_input_device_says_why_and_falls_back_to_the_file(monkeypatch, tmp_path):
    """With no sound server (a private runtime dir with nothing in it), PortAudio has no input device:
    the local source says so in one line, and "auto" picks the file."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/nothing-here")
    reinit_portaudio()
    try:
        if input_devices():
            pytest.skip("this machine has a real input device besides PulseAudio")
        with pytest.raises(NoInputDevice, match="no audio input device"):
            LocalMicrophone().start(lambda chunk, rate: None)
        kind, note = resolve_source("auto")
        assert kind == "file" and "no audio input device" in note and "\n" not in note
        mic = Microphone("auto", file=sample(SAMPLE).wav)
        assert mic.kind == "file" and "playing a file instead" in mic.status_line()
    finally:
        monkeypatch.undo()
        reinit_portaudio()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_local_microphone_hears_paplay_through_pulseaudio(pulse, embedded_model):
    names = [d["name"] for d in input_devices()]
    assert "pulse" in names, f"ALSA's pulse device is missing (libasound2-plugins?); input devices: {names}"
    clip = sample(SAMPLE)
    mic = Microphone("local", device="pulse")
    live = LiveTranscriber(embedded_model, mic)
    live.start()
    try:
        assert mic.source.running, mic.status_line()
        play = subprocess.run(["paplay", f"--device={SINK}", str(clip.wav)], env={**os.environ, **pulse},
                              capture_output=True, text=True, timeout=30)
        assert play.returncode == 0, play.stderr
        expected = normalize(clip.text).split()
        deadline = time.monotonic() + 15  # the last words come out on the end-of-turn flush
        while time.monotonic() < deadline:
            heard = normalize(" ".join(w.text for w in live.state.words)).split()
            if all(w in heard for w in expected):
                break
            time.sleep(0.2)
        line = mic.source.describe()
    finally:
        live.stop()
    assert live.state.error is None, live.state.error
    assert all(w in heard for w in expected), f"heard {heard}, expected {expected}; {line}"
    assert line.startswith("local: pulse") and "Hz" in line and "overflows" in line, line
    assert mic.source.seconds() > clip.meta["duration"] * 0.8, line
