"""Make the sample clips shipped in the package (lab/data/samples): short espeak-ng turns with exact word
alignments.

    .venv/bin/python -m lab.synth.samples        # in a checkout: rewrites the clips, byte for byte the same

Each clip is NAME.wav (24 kHz mono int16) + NAME.json in the synth corpus format (words with start/end
in seconds, turns, pauses). Kept short: all of them together stay under 1 MB, for the notebooks and tests.
The given texts get white noise at SNR_DB (seeded), as the training corpus has: the model never heard
digital silence, and a clip with none sounds like what it was trained on.
"""

from __future__ import annotations

import numpy as np

from .. import synth
from ..resources import samples_root
from .corpus import write_item

SEED = 20261126  # the random turn's seed (and the noise's): the same clips every time
SNR_DB = 30.0  # speech (at synth's -20 dBFS) over noise, inside the corpus's 20-40 dB
MAX_BYTES = 1_000_000

# name -> (text in synth notation: "|" is a mid-turn pause, "." ends a sentence; voice)
TEXTS = {
    "weather": ("what is the weather in paris", "en-us+m3"),
    "timer": ("set a timer for | five minutes", "en-us+f2"),
    "lights": ("turn on the lights in the kitchen", "en+m1"),
}


def main() -> int:
    folder = samples_root()
    for k, (name, (text, voice)) in enumerate(TEXTS.items()):
        audio, meta = synth.synthesize_text(text, voice=voice, lead_s=0.3, end_s=1.2, pause_s=0.9)
        noise = np.random.default_rng(SEED + k).standard_normal(len(audio))
        noise *= 10 ** ((meta["level_dbfs"] - SNR_DB) / 20) / np.sqrt(np.mean(noise**2))
        meta["snr_db"] = SNR_DB
        write_item(folder, name, (audio + noise).astype(np.float32), meta)
    # One turn from the grammar with the corpus's noise and level augmentation, as the model was trained.
    audio, meta = synth.synthesize_turn(SEED, voice="en-us+m5", sentences="grammar")
    write_item(folder, "turn", audio, meta)
    total = sum(p.stat().st_size for p in folder.glob("*.wav")) + sum(p.stat().st_size for p in folder.glob("*.json"))
    for p in sorted(folder.glob("*.json")):
        print(p.stem, p.with_suffix(".wav").stat().st_size // 1000, "kB")
    print(f"total {total / 1e6:.2f} MB")
    if total > MAX_BYTES:
        raise SystemExit(f"samples total {total} bytes, over the {MAX_BYTES} byte budget: shorten them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
