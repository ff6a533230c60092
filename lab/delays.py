"""One delay, several frame counts: how Kyutai's code turns a checkpoint's `audio_delay_seconds` into frames.

A delay of 0.5 s (stt-1b-en_fr) is 6.25 frames at 12.5 Hz, and 2.5 s (stt-2.6b-en) is 31.25: no whole number
of frames. Each place in Kyutai's code rounds it its own way, so the "delay in frames" of one model depends
on where you read it:

    moshi-server config  `asr_delay_in_tokens` (configs/config-stt-*.toml): 6 for the 1B, 32 for the 2.6B;
                         word times are (step - that) / 12.5
    PyTorch scripts      silence padded after the audio: ceil(seconds x 12.5) frames; word times subtract the
                         seconds themselves (scripts/stt_from_file_pytorch.py)
    Unmute               flush of ceil(seconds / 0.08) + 1 frames of zeros (unmute/unmute_handler.py; it
                         serves the 1B)
    lab                  `DSMConfig.delay_frames` = ceil(seconds x 12.5) (what a flush drains), word times
                         subtract `DSMConfig.delay_s` (the seconds)

`delay_roundings` lays these side by side for any delay; the server's count is a configured constant, so it
is given for Kyutai's two releases only.
"""

from __future__ import annotations

import math

from .config import FRAME_RATE

SERVER_DELAY_TOKENS = {0.5: 6, 2.5: 32}  # moshi-server's configs: config-stt-en_fr-hf.toml, config-stt-en-hf.toml


def delay_roundings(seconds: float) -> list[dict]:
    """One row per place in Kyutai's code (and ours) that turns `seconds` of text delay into frames."""
    exact = seconds * FRAME_RATE
    up = math.ceil(round(exact, 6))
    server = SERVER_DELAY_TOKENS.get(seconds)
    return [
        {"where": "exact", "frames": round(exact, 4), "rule": "seconds x 12.5"},
        {"where": "moshi-server word times", "frames": server, "rule": "asr_delay_in_tokens (configured)"},
        {"where": "scripts: silence padded after the audio", "frames": up, "rule": "ceil(seconds x 12.5)"},
        {"where": "scripts: word times", "frames": round(exact, 4), "rule": "subtract the seconds"},
        {"where": "Unmute: flush", "frames": math.ceil(round(seconds / (1 / FRAME_RATE), 6)) + 1,
         "rule": "ceil(seconds / 0.08) + 1"},
        {"where": "lab: DSMConfig.delay_frames (flush)", "frames": up, "rule": "ceil(seconds x 12.5)"},
    ]
