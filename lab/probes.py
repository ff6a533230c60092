"""Failure probes for end of turn: turns of named kinds that voice agents are known to get wrong, spoken by
the corpus engines, run through a model and judged per policy.

    dsm-lab probes [--n 30] [--json] [--model M]      # one line per (probe kind, policy)

Each kind lists texts in the notation of lab.synth.synthesize_text (lowercase words, "|" a mid-turn pause,
"." or "?" the end of a sentence). A probe may use words outside the grammar's vocabulary ("um", "uh"): the
point is to find failures. Kinds with a pause must *not* end the turn there (an early cut is a failure);
kinds without one (short answers, questions, statements) must end it quickly (latency, misses).
Measures per kind and policy, over `n` turns (lab.metrics): early-cut rate, median detection latency, misses.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from . import metrics, turns
from .evaluate import pad_tail

PROBES: dict[str, tuple[str, ...]] = {
    # Digits with a pause inside: a speaker reading a code or a number stops between groups.
    "numbers": ("my code is four five | six", "set a timer for | five minutes", "call me at two three | four",
                "the number is seven eight | nine one", "my pin is one two | three four",
                "wake me up at six | thirty"),
    "lists": ("add milk | eggs | and bread", "play rock | jazz | and blues", "buy apples | pears | and grapes",
              "call anna | paul | and my mother"),
    # A sentence left hanging on a conjunction: plainly unfinished.
    "trailing_conjunction": ("turn on the lights and | the music", "i want pizza but | not today",
                             "cancel the alarm because | i am awake", "set a timer or | remind me later",
                             "call my mother and | my father"),
    "fillers": ("um | set a timer for five minutes", "set a uh | timer for ten minutes",
                "what is the um | weather in paris", "uh | play some music", "turn on the um | kitchen lights"),
    "questions": ("what is the weather in paris?", "how far is the moon?", "can you play some music?",
                  "what time is it?", "is it going to rain tomorrow?"),
    "statements": ("turn on the lights in the kitchen.", "set a timer for five minutes.",
                   "play some music by the beatles.", "call my mother tomorrow morning."),
    "self_corrections": ("set a timer for five | no six minutes", "call my mother | i mean my brother",
                         "play jazz | no rock music", "the weather in paris | sorry in london"),
    # Mid-turn pauses of 1 to 2 s: longer than most silence timers wait.
    "long_pauses": ("what is the weather in | paris", "remind me to buy | milk", "set an alarm for | seven",
                    "turn off the | bedroom lights"),
    # Complete one-word answers: the turn is over at once.
    "short_answers": ("yes.", "thanks.", "no.", "okay.", "sure.", "thank you."),
}
VOICES = ("en-us+m3", "festival:slt", "en-us+f2", "festival:kal", "piper:joe")
KEYS = ("probe", "policy", "kind", "early_cut_rate", "latency_p50_s", "miss_rate", "turns")


def probe_turns(kind: str, n: int, seed: int = 0, voices=VOICES):
    """`n` turns of one kind: (name, audio, meta) as lab.synth.synthesize_text gives them, texts and voices
    taken in turn, speaking rate and pause lengths drawn from a generator seeded by kind and `seed`."""
    from .synth import synthesize_text

    if kind not in PROBES:
        raise ValueError(f"unknown probe kind {kind!r}; kinds: {', '.join(PROBES)}")
    texts = PROBES[kind]
    rng = np.random.default_rng([zlib.crc32(kind.encode()), seed])
    for i in range(n):
        text, voice = texts[i % len(texts)], voices[(i // len(texts) + i) % len(voices)]
        pause = rng.uniform(1.0, 2.0) if kind == "long_pauses" else rng.uniform(0.5, 1.0)
        audio, meta = synthesize_text(text, voice=voice, rate=int(rng.integers(150, 200)), pause_s=pause,
                                      end_s=0.5)
        yield f"{kind}-{i:03d}", audio, {**meta, "text": text, "voice": voice}


def policy_label(policy) -> str:
    """A policy's name with the parameter settings that tell two rows of one table apart."""
    if isinstance(policy, turns.ThresholdPolicy):
        return f"{turns.eot_column(policy.horizon_s)} > {policy.threshold:g}"
    if isinstance(policy, turns.VetoedSilencePolicy):
        head = turns.eot_column(policy.horizon_s)
        return f"silence >= {policy.min_silence_s:g} s vetoed by {head} < {policy.threshold:g}"
    if isinstance(policy, turns.SilencePolicy):
        return f"silence >= {policy.min_silence_s:g} s (energy VAD)"
    if isinstance(policy, turns.SileroPolicy):
        return f"silero vad, {policy.min_silence_duration_ms:g} ms"
    return policy.name


def default_probe_policies(horizons) -> list:
    """The semantic policy as Kyutai's examples use it (2 s head above 0.5) and lab's vetoed silence timer at
    its live defaults, against the two baselines: a 0.5 s silence timer and Silero VAD."""
    semantic = []
    if horizons:
        h = turns.default_horizon(horizons)
        semantic = [turns.ThresholdPolicy(h, 0.5), turns.VetoedSilencePolicy(h, 0.7, 0.45)]
    return [*semantic, turns.SilencePolicy(0.5), turns.SileroPolicy()]


def run_probes(model, n: int = 30, kinds=None, policies=None, seed: int = 0, tail_s: float = 3.0,
               voices=VOICES, progress: bool = False) -> tuple[pd.DataFrame, list]:
    """Every probe kind through `model`, judged by every policy. Returns the summary (one row per kind and
    policy, columns KEYS) and the per-turn records (kind, name, text, voice, trace, ref words, pauses, turns)
    for a drill-down."""
    kinds = list(PROBES) if kinds is None else list(kinds)
    policies = default_probe_policies(model.cfg.eot_horizons_s) if policies is None else policies
    if n < 1:
        raise ValueError(f"probes: n must be at least 1, got {n}")
    records = []
    for kind in kinds:
        for name, audio, meta in probe_turns(kind, n, seed, voices):
            rate = meta["sample_rate"]
            padded = pad_tail(audio, rate, tail_s, seed=zlib.crc32(name.encode()))
            t = model.transcribe((padded, rate))
            records.append({"probe": kind, "name": name, "text": meta["text"], "voice": meta["voice"],
                            "audio": padded, "transcript": t.text, "words": meta["words"],
                            "pauses": meta["pauses"], "turns": meta["turns"],
                            "trace": turns.Trace.from_steps(t.steps, padded, rate, name)})
            if progress:
                print(f"{name}: {meta['text']!r} -> {t.text!r}", flush=True)
    rows = []
    for kind in kinds:
        mine = [r for r in records if r["probe"] == kind]
        for policy in policies:
            outcomes = [o for r in mine for o in metrics.judge_item(policy.decide(r["trace"]), r["turns"])]
            s = metrics.summarize_turns(outcomes)
            rows.append({"probe": kind, "policy": policy_label(policy), "kind": policy.kind,
                         "early_cut_rate": s["early_cut_rate"], "latency_p50_s": s["latency_p50_s"],
                         "miss_rate": s["miss_rate"], "turns": s["turns"]})
    return pd.DataFrame(rows, columns=list(KEYS)), records


def probes_cli(args) -> int:
    """`dsm-lab probes [--n N] [--json] [--model M] [--kind K ...]`."""
    import json

    from .checkpoint import load

    model = load(args.model)
    table, _ = run_probes(model, n=args.n, kinds=args.kind, seed=args.seed)
    if not args.json:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return 0
    for row in table.to_dict("records"):
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else
                              None if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return 0
