"""Random stand-ins for Kyutai's released checkpoints, for tests.

Each writer produces a safetensors file with exactly the tensor names, shapes and dtype of the real
release, filled with seeded random values chosen so that the model does something non-trivial
(activations neither vanish nor explode, codebook entries distinct, codes that follow the input). The
shapes come from Kyutai's reference implementation (`moshi`), so the files load there unchanged and
the tests can compare our code against it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

# ---------------------------------------------------------------------------------------------------
# Mimi
# ---------------------------------------------------------------------------------------------------

MIMI_FILENAME = "mimi-pytorch-e351c8d8@125.safetensors"

# The released file predates moshi's per-step attention projections: its attention weights are
# named `in_proj_weight` / `out_proj.weight`, which moshi renames to `in_projs.0.weight` /
# `out_projs.0.weight` in a load hook. We write the release names.
_RELEASE_RENAMES = {
    ".self_attn.in_projs.0.weight": ".self_attn.in_proj_weight",
    ".self_attn.out_projs.0.weight": ".self_attn.out_proj.weight",
}

# Spread of the random codebook entries. Next to this random model's latents (std ~8) they are small,
# so the nearest entry is mostly the one best aligned with the latent: it varies with the audio, from
# frame to frame and codebook to codebook, which is what parity tests need.
_CODEBOOK_STD = 0.3


def moshi_mimi(path: str | Path | None = None):
    """moshi's MimiModel with all 32 codebooks active (random init when `path` is None).

    All 32, as moshi's STT setup uses: `get_mimi` alone defaults to the first 8 (Moshi's own setting).
    """
    os.environ.setdefault("NO_TORCH_COMPILE", "1")  # read by moshi at import; compiling is slow here
    from moshi.models import loaders

    return loaders.get_mimi(path, device="cpu", num_codebooks=32)


def _to_release_name(name: str) -> str:
    for moshi_suffix, release_suffix in _RELEASE_RENAMES.items():
        if name.endswith(moshi_suffix):
            return name[: -len(moshi_suffix)] + release_suffix
    return name


def _random_like(name: str, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    shape = like.shape
    if name.endswith("._initialized"):
        return torch.ones(shape)
    if name.endswith(".scale"):  # layer scale: far from its 0.01 init so the transformer matters
        return torch.empty(shape).uniform_(0.05, 0.3, generator=gen)
    if ".norm" in name:  # LayerNorm affine: near identity, but not exactly, to catch weight/bias swaps
        base = 1.0 if name.endswith(".weight") else 0.0
        return base + 0.1 * torch.randn(shape, generator=gen)
    if len(shape) >= 2:  # conv / linear weights: He-style scale keeps activations O(1) through depth
        fan_in = math.prod(shape[1:])
        return torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)
    return 0.1 * torch.randn(shape, generator=gen)  # biases


def write_random_mimi(path: str | Path, seed: int = 0) -> Path:
    """Write a random Mimi checkpoint (encoder, decoder, quantizer) in the release format."""
    path = Path(path)
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    reference = moshi_mimi().state_dict()
    for name, like in reference.items():
        if name.endswith(".embedding_sum"):
            continue  # written together with its cluster_usage below
        if name.endswith(".cluster_usage"):
            # moshi's codebook entries are embedding_sum / cluster_usage (an EMA of sums and
            # counts); distinct random entries, with usages far from the 1e-5 clamp.
            prefix = name[: -len("cluster_usage")]
            card, dim = reference[prefix + "embedding_sum"].shape
            usage = torch.empty(card).uniform_(0.5, 2.0, generator=gen)
            entries = _CODEBOOK_STD * torch.randn(card, dim, generator=gen)
            tensors[name] = usage
            tensors[prefix + "embedding_sum"] = entries * usage[:, None]
            continue
        tensors[_to_release_name(name)] = _random_like(name, like, gen).to(like.dtype).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path



# ---------------------------------------------------------------------------------------------------
# STT language model: a whole checkpoint folder, as on the Hugging Face hub
# ---------------------------------------------------------------------------------------------------

STT_WEIGHTS = "model.safetensors"
STT_TOKENIZER = "tokenizer_test_audio.model"
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def stt_config(dim: int = 64, num_layers: int = 2, num_heads: int = 4, context: int = 24, text_card: int = 96,
               extra_heads: int = 4, delay_s: float = 0.5, prefix_s: float = 0.0) -> dict:
    """A config.json with the keys and layout of Kyutai's STT releases (kyutai/stt-1b-en_fr: dim 2048,
    16 layers, 16 heads, context 750, text_card 8000, 4 extra heads), at a test size."""
    return {
        "dim": dim, "text_card": text_card, "existing_text_padding_id": 3, "n_q": 32, "dep_q": 0, "card": 2048,
        "num_heads": num_heads, "num_layers": num_layers, "hidden_scale": 4.125, "causal": True,
        "layer_scale": None, "context": context, "max_period": 100000, "gating": "silu", "norm": "rms_norm_f32",
        "positional_embedding": "rope",
        # The releases carry depformer settings although dep_q = 0 builds no depformer.
        "depformer_dim": 32, "depformer_dim_feedforward": None, "depformer_num_heads": 2,
        "depformer_num_layers": 1, "depformer_multi_linear": True, "depformer_context": 8,
        "depformer_max_period": 10000, "depformer_gating": "silu", "depformer_pos_emb": "none",
        "depformer_weights_per_step": True,
        "delays": [0] * 33, "extra_heads_num_heads": extra_heads, "extra_heads_dim": 6,
        "model_type": "stt", "lm_gen_config": {"temp": 0.0, "temp_text": 0.0, "top_k": 250, "top_k_text": 50},
        "stt_config": {"audio_delay_seconds": delay_s, "audio_silence_prefix_seconds": prefix_s},
        "moshi_name": STT_WEIGHTS, "mimi_name": MIMI_FILENAME, "tokenizer_name": STT_TOKENIZER,
    }


def moshi_lm_kwargs(config: dict) -> dict:
    """The LMModel keyword arguments in a config.json, as moshi's CheckpointInfo separates them."""
    other = ("moshi_name", "mimi_name", "tokenizer_name", "model_type", "lm_gen_config", "stt_config",
             "tts_config", "model_id", "lora_name", "mimi_config_name")
    return {k: v for k, v in config.items() if k not in other}


def ffn_hidden(config: dict) -> int:
    dim_feedforward = int(config["hidden_scale"] * config["dim"])
    return 21 * config["dim"] // 8 if dim_feedforward == 4 * config["dim"] else 2 * dim_feedforward // 3


def random_stt_tensors(config: dict, seed: int = 0, text_scale: float = 4.0, head_scale: float = 4.0,
                       dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Seeded random LM weights under the release's tensor names and shapes (RMSNorm gains (1, 1, d),
    attention `in_proj_weight` / `out_proj.weight`). Random weights are too tame to ever leave one token:
    `text_scale` and `head_scale` widen the text and end-of-turn logits so that outputs follow the audio.
    Each tensor is cast as soon as it is drawn, so a full-size bf16 set never holds an fp32 copy."""
    gen = torch.Generator().manual_seed(seed)
    d, card, hidden = config["dim"], config["card"], ffn_hidden(config)
    t: dict[str, torch.Tensor] = {}

    def normal(name, *shape, scale=1.0):
        t[name] = (torch.randn(*shape, generator=gen) * scale).to(dtype).contiguous()

    def linear(name, out_f, in_f, scale=1.0):
        normal(name, out_f, in_f, scale=scale / math.sqrt(in_f))

    def gain(name):  # near 1, not exactly, so that a gain read from the wrong layer shows
        t[name] = (1 + 0.1 * torch.randn(1, 1, d, generator=gen)).to(dtype)

    for k in range(config["n_q"]):
        normal(f"emb.{k}.weight", card + 1, d)
    normal("text_emb.weight", config["text_card"] + 1, d)
    for i in range(config["num_layers"]):
        p = f"transformer.layers.{i}."
        linear(p + "self_attn.in_proj_weight", 3 * d, d)
        linear(p + "self_attn.out_proj.weight", d, d)
        gain(p + "norm1.alpha")
        gain(p + "norm2.alpha")
        linear(p + "gating.linear_in.weight", 2 * hidden, d)
        linear(p + "gating.linear_out.weight", d, hidden)
    gain("out_norm.alpha")
    linear("text_linear.weight", config["text_card"], d, text_scale)
    for j in range(config.get("extra_heads_num_heads") or 0):
        linear(f"extra_heads.{j}.weight", config.get("extra_heads_dim", 6), d, head_scale)
    return t


def write_test_tokenizer(path: str | Path, vocab_size: int, seed: int = 0) -> Path:
    """A sentencepiece model of exactly `vocab_size` pieces (Kyutai's ids: 0 unk/EPAD, 3 pad), trained on
    made-up words, enough of them to fill the size (8000, stt-1b-en_fr's, takes ~15 s)."""
    import numpy as np

    from lab.tokenizer import Tokenizer, train_tokenizer

    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(_SYLLABLES, size=rng.integers(1, 5))) for _ in range(max(300, 2 * vocab_size))]
    texts = [" ".join(rng.choice(words, size=10)) for _ in range(max(500, vocab_size))]
    path = train_tokenizer(texts, path, vocab_size=vocab_size)
    assert Tokenizer(path).vocab_size == vocab_size, "the test corpus is too small for this vocabulary"
    return path


def write_random_stt_checkpoint(folder: str | Path, config: dict | None = None, *, seed: int = 0,
                                mimi_path: str | Path | None = None, dtype: torch.dtype = torch.float32,
                                tensors: dict[str, torch.Tensor] | None = None, **config_kwargs) -> Path:
    """A Kyutai STT checkpoint folder: config.json, the LM weights, Mimi and the tokenizer, under the names
    config.json gives them. `mimi_path`: an existing random Mimi to hard-link (320 MB; written if None)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = config or stt_config(**config_kwargs)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tensors = tensors if tensors is not None else random_stt_tensors(config, seed, dtype=dtype)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / config.get("moshi_name", STT_WEIGHTS)))
    mimi = folder / config["mimi_name"]
    if mimi_path is None:
        write_random_mimi(mimi, seed)
    elif not mimi.exists():
        try:
            os.link(mimi_path, mimi)
        except OSError:
            shutil.copyfile(mimi_path, mimi)
    write_test_tokenizer(folder / config["tokenizer_name"], config["text_card"], seed)
    return folder
