"""Shared fixtures: tiny models that the tests write themselves, in the real folder format."""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("NO_TORCH_COMPILE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import lab  # noqa: E402
from lab.model import DSM, DSMConfig  # noqa: E402
from lab.tokenizer import train_tokenizer  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models step fastest on one thread (two threads on a busy 2-core machine are ~10x slower), and
    bit-exact comparisons with moshi need both sides on the same thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def reference_or_skip(module: str):
    """Import the reference implementation a parity test compares against (Kyutai's moshi). Where it is
    missing the tests skip on a developer's machine, but fail under CI (the CI environment variable set):
    there a skip would count a parity check that never ran."""
    if not in_ci():
        return pytest.importorskip(module)
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is missing and CI is set: the parity tests against it must run ({e})") from e


WORDS = ("set a timer for five minutes what is the weather in paris turn on the lights please "
         "order a pizza with cheese call my mother tomorrow morning play some music").split()


def tiny_config(**overrides) -> DSMConfig:
    base = dict(d_model=32, num_layers=2, num_heads=4, ffn_hidden=64, context=16, text_vocab_out=64,
                text_vocab_in=65, delay_frames=3, n_filters=16, name="tiny-random")
    base.update(overrides)
    return DSMConfig(**base)


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=8)) for _ in range(400)]
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok") / "tokenizer.model", vocab_size=60)


def make_model(tokenizer_path, seed=0, **overrides) -> DSM:
    torch.manual_seed(seed)
    model = DSM(tiny_config(**overrides))
    # Random weights are too small to ever leave PAD: scale the text head so tokens vary.
    with torch.no_grad():
        model.text_linear.weight.mul_(40)
        for head in model.extra_heads:
            head.weight.mul_(40)
    model.tokenizer = lab.tokenizer.Tokenizer(tokenizer_path)
    return model.eval()


@pytest.fixture
def tiny_model(tokenizer_path):
    return make_model(tokenizer_path)


@pytest.fixture
def tiny_model_dir(tmp_path, tokenizer_path):
    model = make_model(tokenizer_path)
    return lab.save(model, tmp_path / "tiny", tokenizer_path)


def speechlike(seconds: float, rate: int = 24_000, seed: int = 0) -> np.ndarray:
    """Bursts of harmonic tones and noise with gaps: varied enough to move a random model's tokens."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 80 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / rate) / k for k in range(1, 6))
    envelope = (np.sin(2 * np.pi * 1.3 * t) > -0.2).astype(float)
    return (0.3 * x * envelope + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
