"""Random stand-ins for Kyutai's released checkpoints, for tests.

Each writer produces a safetensors file with exactly the tensor names, shapes and dtype of the real
release, filled with seeded random values chosen so that the model does something non-trivial
(activations neither vanish nor explode, codebook entries distinct, codes that follow the input). The
shapes come from Kyutai's reference implementation (`moshi`), so the files load there unchanged and
the tests can compare our code against it.
"""

from __future__ import annotations

import math
import os
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

