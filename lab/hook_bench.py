"""The measurement behind bench/hook_overhead.py and `dsm-lab bench`: what the hook points cost when nobody
records. It lives in the package so that `dsm-lab bench` runs from an installed wheel as from a checkout;
bench/hook_overhead.py is its command line and explains the method.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from . import hooks
from .checkpoint import CheckpointError, default_model_dir, load
from .hooks import HookPoint
from .model import DSM, DSMConfig
from .tokenizer import Tokenizer, train_tokenizer

SENTENCES = [
    "set a timer for five minutes", "what is the weather in paris today", "turn on the lights in the kitchen",
    "order a pizza with extra cheese", "call my mother tomorrow morning", "play some music by the beatles",
    "remind me to buy milk and bread", "how far is the moon from the earth", "read me the news please",
]


def bench_model() -> tuple[DSM, str]:
    """The embedded model if there is one, else DSMConfig defaults with random weights and a
    tokenizer trained on a few sentences. Returns the model and a line saying which."""
    try:
        folder = default_model_dir()
    except CheckpointError:
        folder = None
    if folder is not None:
        model = load(folder)
        root = Path(__file__).resolve().parent.parent  # name it from the package's parent, not this machine
        shown = folder.relative_to(root) if folder.resolve().is_relative_to(root) else folder.name
        return model, f"embedded model {shown} ({model.n_params / 1e6:.1f} M parameters)"
    torch.manual_seed(0)
    model = DSM(DSMConfig()).eval()
    with torch.no_grad():  # as tests/conftest.py does: random weights this small never leave PAD, so that
        model.text_linear.weight.mul_(40)  # the streamer's word and end-of-turn paths get exercised too
        for head in model.extra_heads:
            head.weight.mul_(40)
    tok_dir = Path(tempfile.mkdtemp(prefix="dsm-bench-"))
    model.tokenizer = Tokenizer(train_tokenizer(SENTENCES * 20, tok_dir / "tokenizer.model", vocab_size=120))
    with torch.no_grad():  # ids past the few pieces a tokenizer learns from nine sentences: never chosen
        model.text_linear.weight[model.tokenizer.vocab_size:] = 0
    cfg = model.cfg
    return model, (f"no embedded model: DSMConfig defaults (d {cfg.d_model}, {cfg.num_layers} layers, "
                   f"context {cfg.context}, {model.n_params / 1e6:.1f} M parameters), random weights, text and "
                   "end-of-turn heads scaled x40, text ids limited to the tokenizer's")


def time_steps(model, cache, emb, text, n) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        model.step(emb, text, cache)
        times.append(time.perf_counter() - t0)
    return times


def fire_cost_s(n: int = 200_000) -> float:
    """Seconds per `HookPoint.fire(x)` with nothing attached (loop overhead subtracted)."""
    point, x = HookPoint("bench"), torch.zeros(1)
    t0 = time.perf_counter()
    for _ in range(n):
        point.fire(x)
    t1 = time.perf_counter()
    for _ in range(n):
        pass
    t2 = time.perf_counter()
    return max(0.0, (t1 - t0) - (t2 - t1)) / n


def run(model, repeats: int, steps: int, block: int = 10) -> dict:
    """`repeats` rounds; in each, the variants take turns in blocks of `block` steps (in a shuffled order) until
    each has run `steps` steps, so that a busy machine's slow moments fall on all variants alike."""
    emb = torch.randn(1, model.cfg.d_model) * 0.1
    text = torch.full((1,), model.cfg.pad_id, dtype=torch.long)
    variants = ("hooks", "no-op", "attention")
    caches = {v: model.new_cache(1) for v in variants}
    real_fire = HookPoint.fire
    rng = random.Random(0)

    def noop(self, value):
        return value

    def run_block(v, n):
        try:
            if v == "no-op":
                HookPoint.fire = noop
            if v == "attention":
                with hooks.record(model, "blocks.*.attn.pattern"):
                    return time_steps(model, caches[v], emb, text, n)
            return time_steps(model, caches[v], emb, text, n)
        finally:
            HookPoint.fire = real_fire

    for v in variants:  # warm up, and fill each cache past the context: steady state from here on
        run_block(v, model.cfg.context + 20)
    times: dict[str, list[float]] = {v: [] for v in variants}
    per_repeat: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeats):
        this_repeat: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(steps // block):
            order = list(variants)
            rng.shuffle(order)
            for v in order:
                this_repeat[v] += run_block(v, block)
        for v in variants:
            times[v] += this_repeat[v]
            per_repeat[v].append(statistics.median(this_repeat[v]))
    med = {v: statistics.median(times[v]) * 1e3 for v in variants}
    fires_per_step = len(model.hook_names())  # each hook point fires once a step
    fire_us = min(fire_cost_s() for _ in range(3)) * 1e6
    return {
        "fire_cost_us": fire_us,
        "estimated_overhead_pct": 100 * fires_per_step * fire_us * 1e-3 / med["no-op"],
        "median_step_ms": med,
        "repeat_medians_ms": {v: [round(x * 1e3, 4) for x in per_repeat[v]] for v in variants},
        "overhead_nothing_recorded_pct": 100 * (med["hooks"] - med["no-op"]) / med["no-op"],
        "overhead_attention_recorded_pct": 100 * (med["attention"] - med["no-op"]) / med["no-op"],
        "hook_points": len(model.hook_names()),
        "steps_per_variant": repeats * steps,
    }
