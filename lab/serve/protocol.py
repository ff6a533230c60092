"""Kyutai's streaming speech-to-text protocol, as moshi-server speaks it on `/api/asr-streaming`.

Every message is one binary websocket frame holding a msgpack map with a "type" key.

Client -> server:
    {"type": "Audio", "pcm": [float, ...]}    mono float PCM at 24 kHz, any length (Kyutai's clients: 1920)
    {"type": "Marker", "id": int}             echoed back once the audio sent before it has been transcribed
    {"type": "Init"}                          start the stream afresh (the server answers Ready)
    {"type": "OggOpus", "data": bytes}        moshi-server decodes it; this server answers Error (see below)

Server -> client:
    {"type": "Ready"}                                           first message of every accepted connection
    {"type": "Step", "step_idx": int, "prs": [float, ...], "buffered_pcm": int}
        one per model step of this stream; prs[i] = P(no voice activity within horizon i), buffered_pcm =
        samples received and not yet stepped
    {"type": "Word", "text": str, "start_time": float}         a complete word, seconds into the stream
    {"type": "EndWord", "stop_time": float}                    the end of the last Word, once known (at the
                                                               next EPAD: usually a step or more later)
    {"type": "Marker", "id": int}
    {"type": "Error", "message": str}

moshi-server drops a connection on any message it cannot parse. Here a bad message gets an Error naming
the problem and the stream goes on untouched (nothing of the bad message reaches the model).
"""

from __future__ import annotations

import math

import numpy as np

from ..extras import require

SAMPLE_RATE = 24_000
PATH = "/api/asr-streaming"
API_KEY_HEADER = "kyutai-api-key"  # or ?auth_id=KEY in the URL, for browsers that cannot set headers
CLIENT_TYPES = ("Audio", "Marker", "Init", "OggOpus")
# Float PCM is in [-1, 1]; a little headroom is allowed for clipped input. Larger values are integer PCM
# sent as numbers (int16 samples are up to 32767), which would be heard as noise: refused instead.
MAX_ABS_SAMPLE = 2.0


class ProtocolError(ValueError):
    """A message this server cannot use; the text is sent back to the client as an Error."""


def _msgpack():
    return require("msgpack", "lab.serve")


def pack(message: dict, single_float: bool = False) -> bytes:
    """A message -> one binary frame. The server's floats go out as float64 (moshi-server's times are f64,
    and 0.24 s stays 0.24); clients send their samples as float32 (`single_float`), as Kyutai's do."""
    return _msgpack().packb(message, use_bin_type=True, use_single_float=single_float)


def unpack(frame) -> dict:
    """One frame -> a message dict with a known "type"; raises ProtocolError saying what is wrong."""
    if isinstance(frame, str):
        raise ProtocolError("text frame: messages are msgpack maps in binary frames")
    msgpack = _msgpack()
    try:
        message = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as e:
        raise ProtocolError(f"malformed msgpack ({type(e).__name__}: {e})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a msgpack map with a 'type' key, got a {type(message).__name__}")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("message without a 'type' key")
    return message


def client_type(message: dict, allowed=CLIENT_TYPES) -> str:
    kind = message["type"]
    if kind not in allowed:
        raise ProtocolError(f"unknown message type {kind!r}; expected one of {', '.join(allowed)}")
    return kind


def audio_samples(message: dict) -> np.ndarray:
    """The samples of an Audio message as float32, checked: a list of finite numbers within +-2."""
    pcm = message.get("pcm")
    if isinstance(pcm, (bytes, bytearray)):
        raise ProtocolError(f"Audio.pcm is {len(pcm)} raw bytes; send a list of float samples (24 kHz mono)")
    if not isinstance(pcm, (list, tuple)):
        raise ProtocolError(f"Audio.pcm must be a list of float samples (24 kHz mono), got {type(pcm).__name__}")
    try:  # numpy infers the type in C: floats/ints give a numeric array, anything else does not
        a = np.array(pcm)
    except ValueError:  # ragged nesting
        a = np.array(pcm, dtype=object)
    if len(pcm) and (a.ndim != 1 or a.dtype.kind not in "fiu"):
        bad = next((x for x in pcm if type(x) not in (float, int)), pcm[0])
        raise ProtocolError(f"Audio.pcm must hold numbers only, found a {type(bad).__name__}")
    x = a.astype(np.float32)
    if len(x) and not np.isfinite(x).all():
        raise ProtocolError("Audio.pcm holds NaN or infinite samples")
    if len(x) and float(np.abs(x).max()) > MAX_ABS_SAMPLE:
        raise ProtocolError(f"Audio.pcm holds samples up to {float(np.abs(x).max()):g}: float PCM in [-1, 1] "
                            "is expected (integer PCM? divide int16 samples by 32768)")
    return x


def marker_id(message: dict) -> int:
    mid = message.get("id")
    if type(mid) is not int:
        raise ProtocolError(f"Marker.id must be an integer, got {type(mid).__name__}")
    return mid


# ------------------------------------------------------------------------------ server -> client messages
def ready() -> dict:
    return {"type": "Ready"}


def error(text: str) -> dict:
    return {"type": "Error", "message": text}


def step(step_idx: int, prs: list[float], buffered_pcm: int) -> dict:
    return {"type": "Step", "step_idx": int(step_idx), "prs": [float(p) for p in prs],
            "buffered_pcm": int(buffered_pcm)}


def word(text: str, start_time: float) -> dict:
    return {"type": "Word", "text": text, "start_time": float(start_time)}


def end_word(stop_time: float) -> dict:
    return {"type": "EndWord", "stop_time": float(stop_time)}


def marker(mid: int) -> dict:
    return {"type": "Marker", "id": int(mid)}


def frames_for(samples: int, frame_size: int = 1920) -> int:
    return math.ceil(samples / frame_size)
