"""ctypes binding to espeak-ng's C library, run in a small fork server for reproducibility.

We talk to ``libespeak-ng.so.1`` directly (no header needed; the structs below mirror
``speak_lib.h`` of espeak-ng 1.51). Synthesis is synchronous: ``espeak_Synth`` returns
after every PCM buffer (22050 Hz mono int16) and its events went through our callback.

Determinism. espeak-ng 1.51 keeps hidden state across ``espeak_Synth`` calls: function-
local statics in wavegen.c (pitch flutter index, AGC, cycle counters), the echo buffer, and
libc ``rand()`` for breath noise. The same text twice in one process gives different bytes,
even different lengths. Those statics cannot be reset from outside, so every request runs
in a ``fork()`` of a server process whose espeak was initialized but never synthesized:
each request starts from the same state, whatever ran before it and in whichever worker.
The server is this file run as a script with ``python -I -S`` (stdlib only, ~10 MB), one
per client process, so a fork costs well under a millisecond, while forking a trainer or
notebook process would cost 10+ ms and is unsafe with threads. It exits when its client
closes the pipe. This module must therefore import nothing outside the standard library
at top level (numpy is imported inside ``synthesize``, on the client side).

espeak is not thread-safe; the server handles one request at a time and the client holds
a lock. Without ``os.fork`` (Windows) the server synthesizes in-process: correct, but not
byte-reproducible.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import pickle
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass

ESPEAK_RATE = 22050  # espeak-ng's native output rate for the non-mbrola voices

# From speak_lib.h: espeak_EVENT_TYPE, espeak_AUDIO_OUTPUT, position type, flags, parameters.
EV_LIST_TERMINATED, EV_WORD, EV_END, EV_MSG_TERMINATED, EV_PHONEME = 0, 1, 5, 6, 7
AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
INIT_PHONEME_EVENTS = 0x0001
INIT_DONT_EXIT = 0x8000
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class EspeakEvent(ctypes.Structure):
    """``espeak_EVENT``: 40 bytes on x86-64 (the pointer fields are 8-byte aligned)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character offset in the input text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # sample index since the start of this espeak_Synth call
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),  # WORD: word number; PHONEME: up to 8 bytes of phoneme mnemonic
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(EspeakEvent))


@dataclass(frozen=True)
class Prosody:
    voice: str  # espeak voice name, e.g. "en-us+f2" ("en" is British English)
    rate: int = 175  # words per minute
    pitch: int = 50  # 0..100, relative to the voice's own base pitch
    pitch_range: int = 50  # 0..100, how much intonation moves the pitch


@dataclass
class Phoneme:
    text_position: int  # 1-based text position of the WORD event the phoneme belongs to
    sample: int
    name: str  # espeak mnemonic; names starting with "_" are pauses


@dataclass
class RawSynthesis:
    """Everything one ``espeak_Synth`` call produced (client side)."""

    pcm: object  # np.ndarray of int16 at ESPEAK_RATE
    words: list[tuple[int, int, int]]  # WORD events: (text_position, length, sample)
    phonemes: list[Phoneme]
    end_sample: int


class _Engine:
    """The library, initialized once in the server process."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError as e:  # pragma: no cover - depends on the machine
            raise RuntimeError("libespeak-ng.so.1 not found: apt install espeak-ng libespeak-ng1") from e
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib, self.libc = lib, ctypes.CDLL(None)
        # 100 ms buffers: fewer Python callbacks than the 60 ms default.
        options = INIT_PHONEME_EVENTS | INIT_DONT_EXIT
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 100, None, options)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak_Initialize returned sample rate {rate}, expected {ESPEAK_RATE}")
        self._pcm: list[bytes] = []
        self._words: list = []
        self._phonemes: list = []
        self._end = 0
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._pcm.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while events[i].type != EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == EV_WORD:
                self._words.append((ev.text_position, ev.length, ev.sample))
            elif ev.type == EV_PHONEME:
                self._phonemes.append((ev.text_position, ev.sample, ev.id.string.decode("ascii", "replace")))
            elif ev.type in (EV_END, EV_MSG_TERMINATED):
                self._end = max(self._end, ev.sample)
            i += 1
        return 0  # 0 = go on synthesizing

    def _set_voice(self, voice: str, rate: int, pitch: int, pitch_range: int) -> None:
        # No fallback to espeak_SetVoiceByProperties: it would drop the "+variant" part and
        # silently give another voice than the one written in the metadata.
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r} (try e.g. 'en-us+m3' or 'en+f2')")
        for param, value in ((PARAM_RATE, rate), (PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range),
                             (PARAM_VOLUME, 100)):
            self.lib.espeak_SetParameter(param, int(value), 0)

    def _synth(self, text: str) -> tuple:
        # The library's sample counter restarts with each call, so our buffers must too.
        self._pcm, self._words, self._phonemes, self._end = [], [], [], 0
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err} on {text!r}")
        pcm = b"".join(self._pcm)
        return pcm, self._words, self._phonemes, max(self._end, len(pcm) // 2)

    def run(self, request: tuple) -> list[tuple]:
        voice, rate, pitch, pitch_range, texts = request
        self.libc.srand(1)  # breath noise uses libc rand(): same sequence for every request
        self._set_voice(voice, rate, pitch, pitch_range)
        return [self._synth(t) for t in texts]


# --- framing: 8-byte little-endian length, then a pickle -----------------------------------------

def _write_frame(fd: int, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, got = [], 0
    while got < n:
        block = os.read(fd, min(n - got, 1 << 20))
        if not block:
            return None
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def _read_frame(fd: int):
    head = _read_exact(fd, 8)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", head)[0])
    if body is None:
        raise EOFError("espeak server pipe closed mid-frame")
    return pickle.loads(body)


def _serve(rfd: int, wfd: int) -> None:
    """Server loop: one forked child per request writes the reply itself."""
    engine = _Engine()
    _write_frame(wfd, ("ready", ESPEAK_RATE))
    while (request := _read_frame(rfd)) is not None:
        if not hasattr(os, "fork"):
            try:
                _write_frame(wfd, ("ok", engine.run(request)))
            except Exception as e:  # noqa: BLE001 - reported to the client
                _write_frame(wfd, ("error", type(e).__name__, str(e)))
            continue
        pid = os.fork()
        if pid == 0:
            try:
                try:
                    reply = ("ok", engine.run(request))
                except Exception as e:  # noqa: BLE001 - reported to the client
                    reply = ("error", type(e).__name__, str(e))
                _write_frame(wfd, reply)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status != 0:  # the child died (a signal in the C library?) before writing its reply
            _write_frame(wfd, ("error", "RuntimeError", f"espeak child died (wait status {status})"))


class _Client:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = os.getpid()
        hello = _read_frame(self.proc.stdout.fileno())
        if not hello or hello[0] != "ready":
            raise RuntimeError(f"espeak server failed to start (exit code {self.proc.wait()})")

    def request(self, request: tuple):
        try:
            _write_frame(self.proc.stdin.fileno(), request)
            reply = _read_frame(self.proc.stdout.fileno())
        except (BrokenPipeError, EOFError) as e:
            reply, cause = None, e
        else:
            cause = None
        if reply is None:
            raise RuntimeError(f"espeak server exited (code {self.proc.poll()})") from cause
        return reply

    def close(self) -> None:
        if self.pid == os.getpid() and self.proc.poll() is None:
            self.proc.stdin.close()  # the server exits on EOF
            self.proc.wait(timeout=5)


_client: _Client | None = None
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A forked client (e.g. a DataLoader worker) starts its own server on first use, and must
    # not inherit a lock that another thread of the parent held at the moment of the fork.
    global _client, _lock
    _client, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def synthesize(prosody: Prosody, texts: list[str]) -> list[RawSynthesis]:
    """Synthesize each text with one voice: one ``espeak_Synth`` call (and result) per text.

    The result depends only on the arguments (see the module docstring).
    """
    import numpy as np  # client side only: the server runs without site-packages

    global _client
    request = (prosody.voice, int(prosody.rate), int(prosody.pitch), int(prosody.pitch_range), list(texts))
    with _lock:
        if _client is None or _client.proc.poll() is not None:
            _client = _Client()
            atexit.register(_client.close)
        reply = _client.request(request)
    if reply[0] != "ok":
        _, kind, message = reply
        raise (ValueError if kind == "ValueError" else RuntimeError)(f"espeak: {message}")
    return [RawSynthesis(np.frombuffer(pcm, dtype=np.int16).copy(), words,
                         [Phoneme(*p) for p in phonemes], end)
            for pcm, words, phonemes, end in reply[1]]


if __name__ == "__main__":
    # Keep the protocol on a private descriptor: anything the C library prints to stdout
    # goes to stderr instead of into the reply stream.
    _out = os.dup(1)
    os.dup2(2, 1)
    _serve(0, _out)
