"""One synthetic user turn: text from the grammar, espeak speech, exact word timings, pauses.

A turn is one to three sentences. Each sentence is cut at its pause points into *chunks*;
every chunk is one ``espeak_Synth`` call, so we control the silences between chunks exactly:

* leading silence before the first word: 0.1-0.8 s;
* a **mid-turn pause** (0.3-2.0 s) where the sentence is plainly unfinished ("set a timer
  for ... five minutes"); the chunk before it ends with a comma, which gives espeak's
  continuation intonation rather than a falling, final one;
* between two sentences of the same turn, a short natural gap (0.12-0.35 s). It is neither
  kind of pause and is not listed in ``pauses``: the speaker goes straight on;
* the **end-of-turn** silence (0.5-2.5 s) after the last word, to the end of the audio.

The mid-turn and end-of-turn length ranges overlap on purpose: the length of a silence
must not tell a model whether the turn is over; what was said must.

Each chunk is cut from 10 ms before its first word to 10 ms after its last, with a fade over
those 10 ms (the audio there is already below the word threshold), so pauses are silent
apart from the added noise. Speech is assembled at espeak's 22050 Hz and resampled once to
24 kHz with an anti-aliased polyphase filter (zero delay, so times carry over unchanged).
"""

from __future__ import annotations

import numbers
import random
import re
from dataclasses import dataclass
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from . import grammar
from .engine_espeak import BASE_WPM, ESPEAK_VOICES
from .engines import Spoken, Style, split_voice
from .registry import get_engine

SAMPLE_RATE = 24000

VOICES: list[str] = list(ESPEAK_VOICES)
# A suggestion shared by the trainer and the model card: train with
# ``exclude_voices=(HELDOUT_VOICE,)`` and report WER on a corpus made with ``voices=[HELDOUT_VOICE]``.
HELDOUT_VOICE = "en+f3"

RATE_WPM = (130, 210)
PITCH = (30, 70)
PITCH_RANGE = (30, 80)
LEADING_S = (0.1, 0.8)
MID_TURN_S = (0.3, 2.0)
SENTENCE_GAP_S = (0.12, 0.35)
END_OF_TURN_S = (0.5, 2.5)
P_MID_PAUSE = 0.5  # chance that a sentence with pause points gets a mid-turn pause
P_SECOND_PAUSE = 0.15  # ... and a second one, where it has two points
SENTENCES_PER_TURN = ((1, 2, 3), (6, 3, 1))  # values, weights
SNR_DB = (20.0, 40.0)
SPEECH_LEVEL_DBFS = (-32.0, -14.0)  # RMS of the words' audio after the gain
CLEAN_LEVEL_DBFS = -20.0
EDGE_S = 0.010  # audio kept (and faded) beyond a chunk's first and last word


@dataclass
class _Chunk:
    words: list[str]
    text: str  # what the engine reads: the words plus final punctuation for intonation
    gap_after: float  # seconds of silence after it (end of turn for the last chunk)
    gap_kind: str  # "mid_turn", "sentence" or "end_of_turn"
    written: list[str]  # the words as a transcript writes them (case, final punctuation)


def _plan(rng: random.Random, kind: str | None = None) -> tuple[list[_Chunk], list[str]]:
    values, weights = SENTENCES_PER_TURN
    n_sent = rng.choices(values, weights=weights)[0]
    sentences = [grammar.sample_sentence(rng, kind) for _ in range(n_sent)]
    chunks: list[_Chunk] = []
    for si, sent in enumerate(sentences):
        cuts: list[int] = []
        if sent.pause_points and rng.random() < P_MID_PAUSE:
            k = 2 if len(sent.pause_points) > 1 and rng.random() < P_SECOND_PAUSE else 1
            cuts = sorted(rng.sample(sent.pause_points, k))
        bounds = [0, *cuts, len(sent.words)]
        written = sent.written
        for j in range(len(bounds) - 1):
            words = sent.words[bounds[j]:bounds[j + 1]]
            shown = written[bounds[j]:bounds[j + 1]]
            last_of_sentence = j == len(bounds) - 2
            if not last_of_sentence:
                chunks.append(_Chunk(words, " ".join(words) + ",", rng.uniform(*MID_TURN_S), "mid_turn", shown))
                continue
            end = "?" if sent.question else "."
            if si == n_sent - 1:
                gap, kind = rng.uniform(*END_OF_TURN_S), "end_of_turn"
            else:
                gap, kind = rng.uniform(*SENTENCE_GAP_S), "sentence"
            chunks.append(_Chunk(words, " ".join(words) + end, gap, kind, shown))
    return chunks, [s.written_text for s in sentences]


def _fade(n: int) -> np.ndarray:
    # Raised cosine, squared: the sub-threshold tail beyond a word is gone well before the pause begins.
    return ((0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, endpoint=False))) ** 2).astype(np.float64)


def _to_24k(spoken: Spoken) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A chunk at the corpus rate: anti-aliased polyphase resampling (zero delay, so times scale exactly)."""
    if spoken.rate == SAMPLE_RATE:
        return spoken.pcm.astype(np.float64), list(spoken.words)
    g = gcd(SAMPLE_RATE, spoken.rate)
    up, down = SAMPLE_RATE // g, spoken.rate // g
    n_out = -(-len(spoken.pcm) * up // down)
    pcm = resample_poly(spoken.pcm.astype(np.float64), up, down)[:n_out]
    scale = SAMPLE_RATE / spoken.rate
    words = [(min(int(round(s * scale)), n_out - 1), min(int(round(e * scale)), n_out)) for s, e in spoken.words]
    return pcm, [(s, max(e, s + 1)) for s, e in words]


def _assemble(chunks: list[_Chunk], spoken: list[Spoken], lead_s: float):
    """Place the chunks on one 24 kHz timeline; return audio and word spans in samples."""
    edge = int(EDGE_S * SAMPLE_RATE)
    pieces, spans = [], []
    cursor = int(round(lead_s * SAMPLE_RATE))  # where the next chunk's first word starts
    for chunk, one in zip(chunks, spoken):
        pcm, words = _to_24k(one)
        first, last = words[0][0], words[-1][1]
        lo, hi = max(0, first - edge), min(len(pcm), last + edge)
        seg = pcm[lo:hi].copy()
        if first - lo:
            seg[:first - lo] *= _fade(first - lo)
        if hi - last:
            seg[len(seg) - (hi - last):] *= _fade(hi - last)[::-1]
        offset = cursor - first  # chunk sample -> timeline sample
        pieces.append((lo + offset, seg))
        spans.extend((s + offset, e + offset) for s, e in words)
        cursor = last + offset + int(round(chunk.gap_after * SAMPLE_RATE))
    audio = np.zeros(cursor, np.float64)  # the last gap_after is the end-of-turn silence
    for start, seg in pieces:
        audio[start:start + len(seg)] += seg[: max(0, len(audio) - start)]
    return audio, spans


@dataclass
class _Mix:
    """Level and noise of one item; ``None`` noise_seed means clean speech at CLEAN_LEVEL_DBFS."""

    level_dbfs: float = CLEAN_LEVEL_DBFS
    snr_db: float | None = None
    noise_seed: int | None = None
    color: float = 0.0


def _render(chunks: list[_Chunk], voice: str, style: Style, lead_s: float, mix: _Mix) -> tuple[np.ndarray, dict]:
    engine, name = split_voice(voice)
    spoken = get_engine(engine).speak(name, style, [c.text for c in chunks], [c.words for c in chunks])
    audio, spans = _assemble(chunks, spoken, lead_s)

    # Level: scale so that the words' RMS hits the target, then add noise relative to it.
    speech = np.concatenate([audio[s:e] for s, e in spans])
    speech_rms = float(np.sqrt(np.mean(speech**2))) or 1.0
    audio *= 10 ** (mix.level_dbfs / 20) / speech_rms
    if mix.noise_seed is not None and mix.snr_db is not None:
        gen = np.random.Generator(np.random.PCG64(mix.noise_seed))
        white = gen.standard_normal(len(audio) + 1)
        noise = white[1:] + mix.color * white[:-1]  # a touch of low-pass colour varies the noise
        noise *= 10 ** ((mix.level_dbfs - mix.snr_db) / 20) / float(np.sqrt(np.mean(noise**2)))
        audio += noise
    peak = float(np.max(np.abs(audio)))
    if peak > 0.98:  # keep clear of clipping
        audio *= 0.98 / peak
    # Quantize to the int16 grid here, so the in-memory audio equals what a WAV round trip gives.
    audio = (np.clip(np.round(audio * 32768), -32768, 32767) / 32768).astype(np.float32)

    all_words = [w for c in chunks for w in c.words]
    written = [w for c in chunks for w in c.written]
    words = [{"text": w, "written": wr, "start": round(s / SAMPLE_RATE, 3), "end": round(e / SAMPLE_RATE, 3)}
             for w, wr, (s, e) in zip(all_words, written, spans)]
    pauses, k = [], 0
    for c in chunks:
        k += len(c.words)
        if c.gap_kind == "mid_turn":
            pauses.append({"start": words[k - 1]["end"], "end": words[k]["start"], "kind": "mid_turn"})
    duration = round(len(audio) / SAMPLE_RATE, 3)
    pauses.append({"start": words[-1]["end"], "end": duration, "kind": "end_of_turn"})
    meta = {
        "sample_rate": SAMPLE_RATE,
        "text": " ".join(all_words),
        "words": words,
        "turns": [{"start": words[0]["start"], "end": words[-1]["end"]}],
        "pauses": pauses,
        "duration": duration,
        "voice": voice,
        "engine": split_voice(voice)[0],
        "rate_wpm": round(BASE_WPM * style.speed),
        "pitch": round(100 * style.pitch),
        "pitch_range": round(100 * style.pitch_range),
        "level_dbfs": round(mix.level_dbfs, 2),
        "snr_db": None if mix.snr_db is None else round(mix.snr_db, 2),
    }
    return audio, meta


def pick_voice(rng: random.Random, pool: list[str]) -> str:
    """An engine drawn uniformly from those in the pool, then one of its voices: espeak's 25 voices must not
    drown Piper's one (the corpus is about engines as much as voices)."""
    if not pool:
        raise ValueError("no voices to choose from")
    engines = sorted({split_voice(v)[0] for v in pool})
    engine = rng.choice(engines)
    return rng.choice([v for v in pool if split_voice(v)[0] == engine])


def synthesize_turn(rng_or_seed: random.Random | int, voice: str | None = None, *, voices=None,
                    augment: bool = True, sentences: str | None = None) -> tuple[np.ndarray, dict]:
    """Synthesize one random turn in memory: (float32 mono audio at 24 kHz, metadata dict).

    ``rng_or_seed``: an int seed (stored in the metadata, and enough to make the same turn
    again) or a ``random.Random`` (advanced; metadata seed is then None). ``voice`` fixes the
    voice ("en-us+m3", "festival:slt", "piper:joe", ...), else one is drawn from ``voices``
    (default ``VOICES``). ``augment=False`` gives clean speech at a fixed level with no noise.
    ``sentences``: "grammar", "swap" or "shuffle" for one kind only (test sets); None draws grammar.SENTENCE_MIX.
    The metadata has the corpus JSON fields except ``audio``; times in seconds.
    """
    seed = int(rng_or_seed) if isinstance(rng_or_seed, numbers.Integral) else None
    rng = random.Random(seed) if seed is not None else rng_or_seed
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng_or_seed must be an int or random.Random, got {type(rng_or_seed).__name__}")
    pool = list(voices) if voices is not None else VOICES
    if voice is None:
        voice = pick_voice(rng, pool)
    style = Style(rng.randint(*RATE_WPM) / BASE_WPM, rng.randint(*PITCH) / 100, rng.randint(*PITCH_RANGE) / 100)
    kind = sentences
    chunks, sentences = _plan(rng, kind)
    lead_s = rng.uniform(*LEADING_S)
    # Always draw these, so that augment does not change the text or timings of a seed.
    mix = _Mix(rng.uniform(*SPEECH_LEVEL_DBFS), rng.uniform(*SNR_DB), rng.getrandbits(64),
               rng.uniform(0.0, 0.95))
    audio, meta = _render(chunks, voice, style, lead_s, mix if augment else _Mix())
    meta.update(sentences=sentences, seed=seed)
    return audio, meta


def synthesize_text(text: str, voice: str = "en-us+m3", rate: int = 175, pitch: int = 50,
                    pitch_range: int = 50, *, pause_s: float = 0.8, lead_s: float = 0.3, end_s: float = 1.0,
                    sentence_gap_s: float = 0.2) -> tuple[np.ndarray, dict]:
    """Speak a given text, clean, in the grammar's notation: lowercase words, ``|`` for a
    mid-turn pause of ``pause_s``, ``.`` or ``?`` to end a sentence. E.g.
    ``synthesize_text("set a timer for | five minutes. thank you")``. ``voice`` may name any
    engine's voice ("festival:kal"); ``rate`` is in words per minute (175: the voice's default).
    """
    spaced = re.sub(r"([.?|])", r" \1 ", text.lower())
    chunks: list[_Chunk] = []
    words: list[str] = []
    sentence_chunks: list[_Chunk] = []
    for token in spaced.split() + ["."]:
        if token in ".?|":
            if words:
                kind, gap = ("mid_turn", pause_s) if token == "|" else ("sentence", sentence_gap_s)
                chunk = _Chunk(words, " ".join(words) + ("," if token == "|" else token), gap, kind, list(words))
                chunks.append(chunk)
                sentence_chunks.append(chunk)
                words = []
            if token != "|" and sentence_chunks:  # a sentence ends: write it as a transcript would
                shown = grammar.written_form([w for c in sentence_chunks for w in c.words], token == "?")
                for c in sentence_chunks:
                    c.written, shown = shown[:len(c.words)], shown[len(c.words):]
                sentence_chunks = []
        elif re.fullmatch(r"[a-z]+", token):
            words.append(token)
        else:
            raise ValueError(f"synthesize_text: {token!r} is not a lowercase word (letters a-z only)")
    if not chunks:
        raise ValueError("synthesize_text: no words in the text")
    chunks[-1].gap_after, chunks[-1].gap_kind = end_s, "end_of_turn"
    audio, meta = _render(chunks, voice, Style(rate / BASE_WPM, pitch / 100, pitch_range / 100), lead_s, _Mix())
    sentences, current = [], []
    for c in chunks:
        current += c.words
        if c.gap_kind != "mid_turn":
            sentences.append(" ".join(current))
            current = []
    meta.update(sentences=sentences, seed=None)
    return audio, meta
