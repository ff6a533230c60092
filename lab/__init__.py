"""dsm-lab: a workbench for delayed-streams modeling (DSM) streaming speech-to-text.

    import lab
    model = lab.load()                       # the embedded model, offline
    t = model.transcribe("clip.wav")         # Transcript(text, words, steps)
    s = model.stream(); s.feed(chunk, 48000); s.flush()
    s = model.stream(end_of_turn=lab.VetoedSilenceEndOfTurn())   # live end-of-turn policy of your choice
    with lab.record(model, "blocks.*.attn.pattern", "eot") as rec: ...
    with lab.intervene(model, {"blocks.1.out": fn}): ...          # fn(value, ctx) may replace the value
    with lab.ablate(model, heads=[(2, 3)]): ...                     # a head's output zeroed
"""

from . import attribution, patching  # noqa: F401 (lab.patching.patch_eot, lab.attribution.attribute_eot)
from .checkpoint import CheckpointError, load, save
from .events import EndOfTurn, Step, Transcript, Word
from .hooks import record
from .intervene import ablate, head_means, intervene
from .live_turns import (
                         EMAEndOfTurn,
                         HysteresisEndOfTurn,
                         SilenceEndOfTurn,
                         ThresholdEndOfTurn,
                         VetoedSilenceEndOfTurn,
                         live_policy,
)
from .model import DSM, FRAME_RATE, FRAME_SIZE, SAMPLE_RATE, DSMConfig
from .stream import Streamer

__all__ = [
    "load", "save", "record", "intervene", "ablate", "head_means", "CheckpointError", "DSM", "DSMConfig",
    "Streamer", "Step", "Word", "EndOfTurn", "Transcript", "ThresholdEndOfTurn", "VetoedSilenceEndOfTurn",
    "EMAEndOfTurn", "HysteresisEndOfTurn", "SilenceEndOfTurn", "live_policy", "FRAME_RATE", "FRAME_SIZE",
    "SAMPLE_RATE",
]
__version__ = "0.1.0"
