"""ctypes binding to espeak-ng's C library, with per-call process isolation.

We talk to ``libespeak-ng.so.1`` directly (no header needed; the structs below mirror
``speak_lib.h`` of espeak-ng 1.51). Synthesis is synchronous: ``espeak_Synth`` returns
after every PCM buffer (22050 Hz mono int16) and its events went through our callback.

Determinism. espeak-ng 1.51 keeps hidden state across ``espeak_Synth`` calls: function-
local statics in wavegen.c (pitch flutter index, AGC, cycle counters) and libc ``rand()``
for breath noise. Synthesizing the same text twice in one process gives different bytes
(we measured different lengths, too). Those statics cannot be reset from outside, so each
request runs in a ``fork()`` of a process whose espeak was initialized but has never
synthesized: every request starts from the same state, whatever ran before it and in
whichever worker. A fork costs about a millisecond; synthesis of a turn a few more.

espeak is not thread-safe; the fork also keeps concurrent callers apart (each child has
its own copy of the library state). Without ``os.fork`` (Windows) we fall back to
in-process synthesis, which is correct but not byte-reproducible.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import threading
from dataclasses import dataclass, field

import numpy as np

ESPEAK_RATE = 22050  # espeak-ng's native output rate for the non-mbrola voices

# espeak_EVENT_TYPE
EV_LIST_TERMINATED, EV_WORD, EV_SENTENCE, EV_MARK, EV_PLAY, EV_END, EV_MSG_TERMINATED = range(7)
EV_PHONEME = 7
# espeak_AUDIO_OUTPUT, espeak_POSITION_TYPE, flags and parameters from speak_lib.h
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


class EspeakVoice(ctypes.Structure):
    """``espeak_VOICE``, for espeak_SetVoiceByProperties."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(EspeakEvent))


@dataclass
class Phoneme:
    text_position: int  # 1-based, the text position of the WORD event it belongs to
    sample: int
    name: str


@dataclass
class RawSynthesis:
    """Everything one ``espeak_Synth`` call produced."""

    pcm: np.ndarray  # int16 at ESPEAK_RATE
    words: list[tuple[int, int, int]] = field(default_factory=list)  # (text_position, length, sample)
    phonemes: list[Phoneme] = field(default_factory=list)
    end_sample: int = 0


@dataclass(frozen=True)
class Prosody:
    voice: str  # espeak voice name, e.g. "en-us+f2"
    rate: int = 175  # words per minute
    pitch: int = 50  # 0..100, relative to the voice's own base pitch
    pitch_range: int = 50  # 0..100, how much intonation moves the pitch


class _Engine:
    """The library, initialized once per process. Never synthesizes in a parent that forks."""

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError as e:  # pragma: no cover - depends on the machine
            raise RuntimeError("libespeak-ng.so.1 not found: install espeak-ng (apt install libespeak-ng1)") from e
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(EspeakVoice)]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.libc = ctypes.CDLL(None)
        # 100 ms buffers: fewer Python callbacks than the 60 ms default.
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 100, None, INIT_PHONEME_EVENTS | INIT_DONT_EXIT)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak_Initialize returned sample rate {rate}, expected {ESPEAK_RATE}")
        self._pcm: list[np.ndarray] = []
        self._current: RawSynthesis | None = None
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._pcm.append(np.ctypeslib.as_array(wav, (n,)).copy())
        cur = self._current
        i = 0
        while events[i].type != EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == EV_WORD:
                cur.words.append((ev.text_position, ev.length, ev.sample))
            elif ev.type == EV_PHONEME:
                name = ev.id.string.decode("ascii", "replace")
                cur.phonemes.append(Phoneme(ev.text_position, ev.sample, name))
            elif ev.type in (EV_END, EV_MSG_TERMINATED):
                cur.end_sample = max(cur.end_sample, ev.sample)
            i += 1
        return 0  # 0 = continue synthesis

    def set_voice(self, prosody: Prosody) -> None:
        if self.lib.espeak_SetVoiceByName(prosody.voice.encode()) != 0:
            # Fall back to properties (language + variant) before giving up.
            lang, _, variant = prosody.voice.partition("+")
            spec = EspeakVoice(languages=lang.encode(), gender=2 if variant.startswith("f") else 1)
            if not lang or self.lib.espeak_SetVoiceByProperties(ctypes.byref(spec)) != 0:
                raise ValueError(f"espeak-ng has no voice {prosody.voice!r}")
        for param, value in ((PARAM_RATE, prosody.rate), (PARAM_PITCH, prosody.pitch),
                             (PARAM_RANGE, prosody.pitch_range), (PARAM_VOLUME, 100)):
            self.lib.espeak_SetParameter(param, int(value), 0)

    def synth(self, text: str) -> RawSynthesis:
        # The sample counter restarts with each call, so the buffer must too.
        self._pcm = []
        self._current = RawSynthesis(pcm=np.zeros(0, np.int16))
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err} on {text!r}")
        out = self._current
        out.pcm = np.concatenate(self._pcm) if self._pcm else np.zeros(0, np.int16)
        out.end_sample = max(out.end_sample, len(out.pcm))
        self._current = None
        return out

    def run(self, prosody: Prosody, texts: list[str]) -> list[RawSynthesis]:
        self.libc.srand(1)  # breath/aspiration noise uses libc rand(): fix it per request
        self.set_voice(prosody)
        return [self.synth(t) for t in texts]


_engine: _Engine | None = None
_pid = -1
_lock = threading.Lock()  # one request at a time per process (fork + library state)


def _get_engine() -> _Engine:
    global _engine, _pid
    if _engine is None or _pid != os.getpid():
        _engine, _pid = _Engine(), os.getpid()
    return _engine


def synthesize(prosody: Prosody, texts: list[str], isolate: bool = True) -> list[RawSynthesis]:
    """Synthesize each text with one voice; one ``espeak_Synth`` call (and result) per text.

    With ``isolate`` (the default where ``os.fork`` exists) the work runs in a forked child so
    that the result depends only on the arguments.
    """
    with _lock:
        engine = _get_engine()
        if not isolate or not hasattr(os, "fork"):
            return engine.run(prosody, texts)
        return _run_forked(engine, prosody, texts)


def _run_forked(engine: _Engine, prosody: Prosody, texts: list[str]) -> list[RawSynthesis]:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: synthesize, send the pickled result, and leave without cleanup
        code = 0
        try:
            os.close(rfd)
            try:
                payload = pickle.dumps(("ok", engine.run(prosody, texts)), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as e:  # noqa: BLE001 - any failure goes back to the parent
                payload, code = pickle.dumps(("error", f"{type(e).__name__}: {e}")), 1
            view = memoryview(payload)
            while view:
                view = view[os.write(wfd, view):]
        finally:
            os._exit(code)
    os.close(wfd)
    chunks = []
    with os.fdopen(rfd, "rb") as f:  # read to EOF before waiting, or a full pipe deadlocks the child
        while block := f.read(1 << 20):
            chunks.append(block)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError(f"espeak child process died without a result (wait status {status})")
    kind, result = pickle.loads(b"".join(chunks))
    if kind != "ok":
        if result.startswith("ValueError: "):
            raise ValueError(result[len("ValueError: "):])
        raise RuntimeError(f"espeak synthesis failed: {result}")
    return result
