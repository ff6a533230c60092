"""Speech engines by name: `get_engine("festival")`, the voices of an engine, checking a voice.

Kept apart from `engines` (the interface the engine modules implement) so that the engine modules and the
registry that loads them do not import each other.
"""

from __future__ import annotations

from .engines import RESERVED_ENGINES, Engine, split_voice

_ENGINES: dict[str, Engine] = {}


def get_engine(name: str) -> Engine:
    """The engine called `name` (espeak, festival, piper, freetts); a clear error for anything else."""
    if name in RESERVED_ENGINES:
        raise ValueError(RESERVED_ENGINES[name])
    if name not in _ENGINES:
        if name == "espeak":
            from .engine_espeak import EspeakEngine as cls
        elif name == "festival":
            from .engine_festival import FestivalEngine as cls
        elif name == "piper":
            from .engine_piper import PiperEngine as cls
        elif name == "freetts":
            from .engine_freetts import FreeTTSEngine as cls
        else:
            raise ValueError(f"unknown speech engine {name!r}; known: {', '.join(ENGINE_NAMES)}")
        _ENGINES[name] = cls()
    return _ENGINES[name]


ENGINE_NAMES = ("espeak", "festival", "piper", "freetts")


def engine_voices(name: str) -> list[str]:
    """Every voice of one engine, as `engine:voice` names (bare names for espeak)."""
    engine = get_engine(name)
    return [v if name == "espeak" else f"{name}:{v}" for v in engine.voices]


def check_voice(voice: str) -> None:
    engine, name = split_voice(voice)
    get_engine(engine).check(name)
