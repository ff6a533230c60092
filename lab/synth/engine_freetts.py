"""FreeTTS as an engine: the Java synthesiser of Debian main, kept out of training as a held-out engine.

FreeTTS reports no word times to a command-line caller, so a chunk's speech runs from the first to the last
sample above the energy threshold, and its words share that span by their letters: the edges (where turns
and pauses begin and end) are exact, the inner word boundaries approximate.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .align import envelope, silence_threshold
from .engines import Engine, EngineUnavailable, Spoken, Style, spans_by_letters

JAR_DIRS = ("/usr/share/java",)


def _jar() -> Path:
    for d in JAR_DIRS:
        if (Path(d) / "freetts.jar").exists():
            return Path(d) / "freetts.jar"
    raise EngineUnavailable("freetts.jar not found: install the Debian package freetts (and a Java runtime)")


class FreeTTSEngine(Engine):
    name = "freetts"
    voices = ("kevin16",)

    def check(self, voice: str) -> None:
        super().check(voice)
        _jar()

    def speak(self, voice: str, style: Style, texts: list[str], words: list[list[str]]) -> list[Spoken]:
        self.check(voice)
        out = []
        with tempfile.TemporaryDirectory(prefix="dsm-freetts-") as tmp:
            # One Java start per turn: each line of the file is one utterance, dumped to its own file.
            lines = Path(tmp) / "chunks.txt"
            lines.write_text("".join(t.replace("\n", " ") + "\n" for t in texts))
            cmd = ["java", "-jar", str(_jar()), "-voice", voice, "-dumpMultiAudio", f"{tmp}/chunk.wav",
                   "-lines", str(lines)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            wavs = [Path(tmp) / f"chunk{i}.wav" for i in range(len(texts))]
            extra = Path(tmp) / f"chunk{len(texts)}.wav"  # a line split in two would shift every file after it
            if proc.returncode != 0 or not all(w.exists() for w in wavs) or extra.exists():
                raise RuntimeError(f"freetts failed on {texts!r}: {(proc.stderr or proc.stdout)[-400:]}")
            for text, ws, wav in zip(texts, words, wavs):
                pcm, rate = sf.read(wav, dtype="float64")
                env = envelope(pcm * 32768, rate)
                loud = np.flatnonzero(env > silence_threshold(env))
                if not len(loud):
                    raise RuntimeError(f"freetts produced silence for {text!r}")
                out.append(Spoken(pcm, rate, spans_by_letters(int(loud[0]), int(loud[-1]) + 1, ws)))
        return out
