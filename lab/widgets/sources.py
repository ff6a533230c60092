"""Where live audio comes from: one interface, three sources.

    source = LocalMicrophone()            # this machine's input device, through PortAudio (sounddevice)
    source = BrowserMicrophone()          # the page's microphone, streamed to the kernel (browser.py)
    source = FileMicrophone("clip.wav")   # a file played in real time: the microphone when there is none
    source.start(sink)                    # sink(chunk, sample_rate) is called from the source's own thread
    source.stop()

A source never runs the model: its callback only hands mono float32 chunks to `sink`, which queues them
(a PortAudio callback that blocks drops audio). `describe()` is the one-line status a widget shows: the
device, the sample rate, the block size and the overflows counted so far.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Sink = Callable[[np.ndarray, int], None]
SOURCES = ("browser", "local", "file", "auto")


class NoInputDevice(RuntimeError):
    """No audio input device can be opened here; the message says why in one line."""


class AudioSource:
    """What every source offers a live transcriber. Subclasses fill in `_open` and `_close`."""

    kind = "?"
    finite = False  # True for a file: it ends, and the transcriber flushes when it does

    def __init__(self):
        self.sample_rate: int = 0  # Hz, known once started (the browser tells us when it starts)
        self.block_size: int = 0  # samples per chunk handed to the sink
        self.device: str = ""
        self.overflows = 0  # chunks the source lost because nobody read them in time
        self.chunks = 0
        self.samples = 0
        self.level_db = -120.0  # RMS of the last chunk, dBFS
        self.error: str | None = None
        self.done = threading.Event()  # set when a finite source has played everything (or on error)
        self._sink: Sink | None = None
        self.running = False

    def start(self, sink: Sink):
        self.error, self._sink = None, sink
        self.done.clear()
        self._open()
        self.running = True

    def stop(self):
        if self.running:
            self.running = False
            self._close()
        self.done.set()

    def _deliver(self, chunk: np.ndarray, sample_rate: int):
        """Count and forward one chunk (float32 mono)."""
        self.chunks += 1
        self.samples += len(chunk)
        if len(chunk):
            self.level_db = float(10 * np.log10(np.mean(np.square(chunk, dtype=np.float64)) + 1e-12))
        if self._sink is not None:
            self._sink(chunk, sample_rate)

    def seconds(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    def describe(self) -> str:
        block = f"{self.block_size} samples ({1000 * self.block_size / self.sample_rate:.0f} ms)" \
            if self.sample_rate and self.block_size else "?"
        rate = f"{self.sample_rate} Hz" if self.sample_rate else "? Hz"
        return (f"{self.kind}: {self.device or '?'} · {rate} · block {block} · overflows {self.overflows} · "
                f"{self.seconds():.1f} s heard · level {self.level_db:.0f} dBFS")

    def _open(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self):  # pragma: no cover - abstract
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------ local


def input_devices() -> list[dict]:
    """PortAudio's input devices (index, name, channels, default rate); [] when PortAudio has none."""
    try:
        import sounddevice as sd
    except ModuleNotFoundError as e:
        raise NoInputDevice('sounddevice is not installed: pip install "dsm-lab[lab]"') from e
    except OSError as e:  # libportaudio2 missing
        raise NoInputDevice(f"PortAudio is not available ({e}); install libportaudio2") from e
    devices = sd.query_devices()
    return [{"index": i, "name": d["name"], "channels": d["max_input_channels"],
             "default_samplerate": int(d["default_samplerate"])}
            for i, d in enumerate(devices) if d["max_input_channels"] > 0]


class LocalMicrophone(AudioSource):
    """This machine's input device through PortAudio (sounddevice), read by a callback on PortAudio's thread.

    `device`: an index or a name PortAudio knows (None: the default input, else the first input device).
    `sample_rate`: None for the device's own rate (the streamer resamples any rate).
    Overflows are PortAudio's `input_overflow` flags: audio the driver dropped because it was not read in time.
    """

    kind = "local"

    def __init__(self, device: int | str | None = None, sample_rate: int | None = None, block_size: int = 1920):
        super().__init__()
        self._wanted_device, self._wanted_rate, self.block_size = device, sample_rate, block_size
        self._stream = None

    def _pick_device(self) -> dict:
        import sounddevice as sd

        inputs = input_devices()
        if not inputs:
            raise NoInputDevice("no audio input device: PortAudio lists none on this machine")
        want = self._wanted_device
        if want is None:
            default = sd.default.device[0] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
            want = default if default is not None and default >= 0 else inputs[0]["index"]
        for d in inputs:
            if d["index"] == want or d["name"] == want:
                return d
        names = ", ".join(f"{d['index']}: {d['name']}" for d in inputs)
        raise NoInputDevice(f"input device {want!r} not found; input devices: {names}")

    def _open(self):
        import sounddevice as sd

        d = self._pick_device()
        rate = int(self._wanted_rate or d["default_samplerate"])

        def callback(indata, frames, time_info, status):
            if status.input_overflow:
                self.overflows += 1
            self._deliver(indata[:, 0].copy(), rate)

        try:
            self._stream = sd.InputStream(device=d["index"], samplerate=rate, channels=1, dtype="float32",
                                          blocksize=self.block_size, callback=callback)
            self._stream.start()
        except Exception as e:  # PortAudioError, or ALSA refusing the device (e.g. no sound server)
            self._stream = None
            raise NoInputDevice(f"cannot open input device {d['name']!r} at {rate} Hz: {e}") from e
        self.device, self.sample_rate = d["name"], rate

    def _close(self):
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None


def probe_local(device: int | str | None = None) -> str | None:
    """None if a local input device opens here, else the one-line reason it does not."""
    mic = LocalMicrophone(device)
    try:
        mic.start(lambda chunk, rate: None)
    except NoInputDevice as e:
        return str(e)
    mic.stop()
    return None


# ------------------------------------------------------------------------------------------------- file


class FileMicrophone(AudioSource):
    """A sound file played in real time, block by block, from a thread: the microphone when there is none.

    `speed` > 1 plays faster than real time (tests); `loop` starts again at the end instead of finishing.
    `tail_s` of quiet follows the file, as a speaker who stopped talking (the end-of-turn heads need it):
    the file's own noise floor continued (lab.evaluate.pad_tail), as a microphone gives, not digital zeros.
    """

    kind = "file"
    finite = True

    def __init__(self, path: str | Path, speed: float = 1.0, block_s: float = 0.08, loop: bool = False,
                 tail_s: float = 1.0):
        super().__init__()
        from ..audio import load_audio

        self.path = Path(path)
        self.audio, self.sample_rate = load_audio(self.path)
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        from ..evaluate import pad_tail

        self.audio = pad_tail(self.audio, self.sample_rate, tail_s, "noise").astype(np.float32)
        self.speed, self.loop = speed, loop
        self.finite = not loop
        self.block_size = max(1, round(block_s * self.sample_rate))
        self.device = self.path.name + (f" at {speed:g}x" if speed != 1 else "")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._play, name=f"file-mic {self.path.name}", daemon=True)
        self._thread.start()

    def _play(self):
        block, period = self.block_size, self.block_size / self.sample_rate / self.speed
        t0, n, pos = time.perf_counter(), 0, 0
        try:
            while not self._stop.is_set():
                if pos >= len(self.audio):
                    if not self.loop:
                        break
                    pos = 0
                self._deliver(self.audio[pos:pos + block], self.sample_rate)
                pos, n = pos + block, n + 1
                lag = t0 + n * period - time.perf_counter()
                if lag > 0:
                    self._stop.wait(lag)  # a real microphone delivers a block once it has been spoken
                elif lag < -period:
                    self.overflows += 1  # the sink held us up by more than one block
        except Exception as e:  # shown by the widget; the transcriber sees `done` and stops
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.running = False
            self.done.set()

    def _close(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)


def default_file() -> Path:
    """The clip played when there is no microphone: the first of the package's sample clips."""
    from ..resources import samples_root

    wavs = sorted(samples_root().glob("*.wav"))
    if not wavs:
        raise FileNotFoundError(f"no sample clip in {samples_root()}; run python -m lab.synth.samples")
    return wavs[0]


def resolve_source(kind: str = "auto", device=None) -> tuple[str, str]:
    """The source to use for `kind`, and a one-line note on why ("" when it is the one asked for).

    "auto": the local microphone if one opens here, else the file. The browser is never picked
    automatically: only the page can say whether it has a microphone, and only once it shows the widget.
    """
    if kind not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {kind!r}")
    if kind != "auto":
        return kind, ""
    reason = probe_local(device)
    if reason is None:
        return "local", ""
    return "file", f"{reason}; playing a file instead (choose 'browser' to use this page's microphone)"
