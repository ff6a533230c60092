"""Festival as an engine: Debian's festival with its English voices, word spans from the utterance.

Festival synthesises from a duration model, so its segment times are where the sound was made: a word runs
from the start of its first segment to the end of its last (the Word -> SylStructure -> Segment relations).
One `festival -b` process speaks all the chunks of a turn (about 0.2 s of start-up per turn).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import soundfile as sf

from .engines import Engine, EngineUnavailable, Spoken, Style, need_program, spans_by_letters

# voice -> (festival's voice function, Debian package)
FESTIVAL_VOICES = {
    "kal": ("voice_kal_diphone", "festvox-kallpc16k"),
    "ked": ("voice_ked_diphone", "festvox-kdlpc16k"),
    "slt": ("voice_cmu_us_slt_arctic_hts", "festvox-us-slt-hts"),
}
_VOICE_DIRS = {"kal": "english/kal_diphone", "ked": "english/ked_diphone", "slt": "us/cmu_us_slt_arctic_hts"}

_DUMP = """
(define (dsm_dump utt path)
  (utt.save.wave utt path 'riff)
  (mapcar (lambda (w) (format t "W\\t%s\\t%f\\t%f\\n" (item.name w)
     (item.feat w "R:SylStructure.daughter1.daughter1.segment_start")
     (item.feat w "R:SylStructure.daughtern.daughtern.end"))) (utt.relation.items utt 'Word))
  (format t "E\\n"))
"""


class FestivalEngine(Engine):
    name = "festival"
    voices = tuple(FESTIVAL_VOICES)

    def check(self, voice: str) -> None:
        super().check(voice)
        need_program("festival", "festival")
        if not any((Path(root) / _VOICE_DIRS[voice]).is_dir()
                   for root in ("/usr/share/festival/voices", "/usr/local/share/festival/voices")):
            raise EngineUnavailable(f"festival voice {voice!r} is not installed: install the Debian package "
                                    f"{FESTIVAL_VOICES[voice][1]}")

    def speak(self, voice: str, style: Style, texts: list[str], words: list[list[str]]) -> list[Spoken]:
        self.check(voice)
        with tempfile.TemporaryDirectory(prefix="dsm-festival-") as tmp:
            lines = [f"({FESTIVAL_VOICES[voice][0]})", f"(Parameter.set 'Duration_Stretch {1.0 / style.speed:.4f})",
                     _DUMP]
            for i, text in enumerate(texts):
                lines.append(f'(dsm_dump (SynthText "{_quote(text)}") "{tmp}/{i}.wav")')
            script = Path(tmp) / "speak.scm"
            script.write_text("\n".join(lines) + "\n")
            proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True, timeout=120)
            if proc.returncode != 0 or not (Path(tmp) / f"{len(texts) - 1}.wav").exists():
                raise RuntimeError(f"festival failed on {texts!r}: {proc.stderr.strip()[-400:]}")
            per_chunk = _parse(proc.stdout)
            out = []
            for i, ws in enumerate(words):
                pcm, rate = sf.read(f"{tmp}/{i}.wav", dtype="float64")
                out.append(Spoken(pcm, rate, _spans(per_chunk[i], ws, rate, len(pcm))))
        return out


def _quote(text: str) -> str:
    return text.replace("\\", "").replace('"', "")


def _parse(stdout: str) -> list[list[tuple[str, float, float]]]:
    chunks, current = [], []
    for line in stdout.splitlines():
        if line.startswith("W\t"):
            _, word, start, end = line.split("\t")
            current.append((word, float(start), float(end)))
        elif line == "E":
            chunks.append(current)
            current = []
    return chunks


def _spans(timed: list[tuple[str, float, float]], words: list[str], rate: int, n: int) -> list[tuple[int, int]]:
    if not timed:
        raise RuntimeError(f"festival gave no word timings for {words!r}")
    spans = [(min(int(round(s * rate)), n - 1), min(int(round(e * rate)), n)) for _, s, e in timed]
    if len(spans) == len(words):
        return [(s, max(e, s + 1)) for s, e in spans]
    # Festival split or joined tokens differently from our words: share its speech span by letters.
    return spans_by_letters(spans[0][0], spans[-1][1], words)
