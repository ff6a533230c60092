"""Writing a synthetic corpus to disk and reading items back.

An item is ``NAME.wav`` (24 kHz mono int16) next to ``NAME.json`` (see ``synthesize_turn``
for the fields, plus ``audio``, ``index`` and ``corpus_seed``). Item ``i`` of a corpus with
seed ``S`` is ``synthesize_turn(item_seed(S, i))``: it depends on nothing else, so items can
be made in any order, by any number of worker processes, with identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import numbers
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from .engines import EngineUnavailable
from .registry import check_voice, engine_voices
from .turn import SAMPLE_RATE, VOICES, synthesize_turn


def item_seed(seed: int, index: int) -> int:
    """The seed of item ``index`` of a corpus with ``seed`` (stable across Python versions)."""
    digest = hashlib.sha256(f"dsm-lab-synth:{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: a positive int everywhere


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"out_dir {str(out_dir)!r} is not writable: {e.strerror or e}") from e


def write_item(out_dir: Path, name: str, audio: np.ndarray, meta: dict) -> Path:
    """Write ``NAME.wav`` and ``NAME.json``; return the JSON path."""
    pcm = np.clip(np.round(audio.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
    sf.write(out_dir / f"{name}.wav", pcm, SAMPLE_RATE, subtype="PCM_16")
    meta = {"audio": f"{name}.wav", **meta}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(meta, indent=1) + "\n")
    return path


def _make_item(job: tuple[str, int, int, int, tuple[str, ...], str | None]) -> str:
    out_dir, seed, index, width, voices, sentences = job
    audio, meta = synthesize_turn(item_seed(seed, index), voices=list(voices), sentences=sentences)
    meta.update(index=index, corpus_seed=seed)
    return str(write_item(Path(out_dir), f"synth_{index:0{width}d}", audio, meta))


def generate_corpus(out_dir, n: int, seed: int, voices: Sequence[str] | None = None,
                    exclude_voices: Iterable[str] = (), workers: int | None = None,
                    progress: bool = True, sentences: str | None = None) -> list[Path]:
    """Write ``n`` items to ``out_dir`` and return their JSON paths, in index order.

    ``voices`` (default ``VOICES``) minus ``exclude_voices`` is the pool each item draws its
    voice from; hold a voice out of training with ``exclude_voices=[v]`` and make its test
    set with ``voices=[v]``. ``workers`` processes (default: one per CPU) share the work;
    the result does not depend on it.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError(f"n must be a positive integer number of items, got {n!r}")
    excluded = set([exclude_voices] if isinstance(exclude_voices, str) else exclude_voices)
    base = [voices] if isinstance(voices, str) else list(voices if voices is not None else VOICES)
    pool = tuple(v for v in base if v not in excluded)
    if not pool:
        raise ValueError(f"no voices left: voices={base} minus exclude_voices={sorted(excluded)}")
    out = Path(out_dir)
    _check_out_dir(out)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                or workers <= 0):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    if workers is None:  # starting a process costs ~0.5 s: not worth it for a handful of items
        workers = 1 if n < 64 else (os.cpu_count() or 1)
    n, workers = int(n), min(int(n), int(workers))
    width = max(6, len(str(n - 1)))
    if sentences is not None and sentences not in ("grammar", "swap", "shuffle"):
        raise ValueError(f"sentences must be grammar, swap or shuffle (or None for the mix), got {sentences!r}")
    jobs = [(str(out), int(seed), i, width, pool, sentences) for i in range(n)]

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n, desc="synth", unit="item")
    paths: list[Path] = []
    try:
        if workers == 1:
            for job in jobs:
                paths.append(Path(_make_item(job)))
                if bar:
                    bar.update()
        else:
            # spawn, not fork: the caller may be a notebook or trainer with threads running.
            with mp.get_context("spawn").Pool(workers) as p:
                for path in p.imap(_make_item, jobs, chunksize=max(1, min(16, n // (workers * 8)))):
                    paths.append(Path(path))
                    if bar:
                        bar.update()
    finally:
        if bar:
            bar.close()
    return paths


def resolve_voices(engines: str | Sequence[str] | None, voices: Sequence[str] | None = None) -> list[str] | None:
    """The voice pool for ``--engines a,b`` plus ``--voice v`` options, every one checked on this machine
    (a missing engine or voice raises EngineUnavailable naming the package). None: the default pool."""
    names = engines.split(",") if isinstance(engines, str) else list(engines or [])
    pool = list(voices or [])
    for name in (n.strip() for n in names if n.strip()):
        pool += engine_voices(name)
    for v in pool:
        check_voice(v)
    return pool or None


def load_item(json_path) -> tuple[np.ndarray, dict]:
    """Read an item back as (float32 audio, metadata), checking that the two agree.

    Raises ValueError naming the file if the JSON is malformed, the WAV is missing or is not
    mono at the stated sample rate, or the words do not fit in order inside the audio.
    """
    path = Path(json_path)

    def bad(msg: str) -> ValueError:
        return ValueError(f"{path}: {msg}")

    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise bad(f"cannot read item metadata ({e})") from e
    missing = [k for k in ("audio", "sample_rate", "words", "turns", "pauses") if k not in meta]
    if missing:
        raise bad(f"missing keys {missing}")
    wav = path.parent / meta["audio"]
    try:
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise bad(f"cannot read audio {wav.name} ({e})") from e
    if audio.shape[1] != 1:
        raise bad(f"audio {wav.name} has {audio.shape[1]} channels, expected mono")
    if rate != meta["sample_rate"]:
        raise bad(f"audio {wav.name} is {rate} Hz but the JSON says sample_rate {meta['sample_rate']}")
    duration = audio.shape[0] / rate
    prev_end = 0.0
    for w in meta["words"]:
        if not (prev_end - 1e-3 <= w["start"] < w["end"]):
            raise bad(f"word {w} overlaps the previous word or has end <= start")
        prev_end = w["end"]
    if prev_end > duration + 1e-3:
        raise bad(f"words run to {prev_end:.3f} s but audio {wav.name} lasts {duration:.3f} s")
    if "duration" in meta and abs(meta["duration"] - duration) > 2e-3:
        raise bad(f"JSON duration {meta['duration']} s differs from the audio's {duration:.3f} s")
    return audio[:, 0], meta


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``synth --n N --seed S --out DIR [--exclude-voice V] [--voice V] [--workers W]``."""
    ap = argparse.ArgumentParser(prog="dsm-lab synth", description="Generate a synthetic speech corpus.")
    ap.add_argument("--n", type=int, required=True, help="number of items")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--engines", default=None,
                    help="comma-separated engines whose voices to use: espeak,festival,piper (default: espeak); "
                         "freetts is the held-out engine, flite is refused")
    ap.add_argument("--voice", action="append", help="use only these voices (repeatable), e.g. en+f3, festival:slt")
    ap.add_argument("--exclude-voice", action="append", default=[], help="hold a voice out (repeatable)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--sentences", choices=["grammar", "swap", "shuffle"], default=None,
                    help="one kind of sentence only (default: the grammar/swap/shuffle mix)")
    args = ap.parse_args(argv)
    try:
        voices = resolve_voices(args.engines, args.voice)
    except (ValueError, EngineUnavailable) as e:
        ap.error(str(e))
    paths = generate_corpus(args.out, args.n, args.seed, voices=voices, exclude_voices=args.exclude_voice,
                            workers=args.workers, sentences=args.sentences)
    print(f"wrote {len(paths)} items to {args.out}")
    return 0
