"""Kyutai's released speech-to-text checkpoints on our DSM: config, tensor names, Mimi, tokenizer, alignment.

    model = lab.load("kyutai/stt-1b-en_fr")                      # a Hugging Face repo id (cache first) ...
    model = lab.load(folder, dtype="bfloat16", alignment="scripts")  # ... or a folder laid out like one

A Kyutai STT folder holds `config.json` (the keyword arguments of moshi's `LMModel` plus `moshi_name`,
`mimi_name`, `tokenizer_name`, `model_type: "stt"` and `stt_config`), the LM weights (`moshi_name`, default
model.safetensors), the Mimi codec (`mimi_name`) and a sentencepiece tokenizer (`tokenizer_name`). Their LM
is our DSM with the codebook frontend, layer for layer:

    config.json                              DSMConfig
    dim, num_heads, num_layers               d_model, num_heads, num_layers
    hidden_scale                             ffn_hidden: moshi's rule on int(hidden_scale * dim) (below);
                                             read off the weights when absent (the candle repo's config)
    context, max_period                      context, max_period (RoPE, interleaved pairs)
    text_card                                text_vocab_out = text_card, text_vocab_in = text_card + 1
    n_q, card                                n_codebooks, codebook_card (input id `card` = initial)
    existing_text_(end_)padding_id           pad_id (3), epad_id (0)
    norm "rms_norm_f32"                      norm_eps 1e-8, RMS computed in fp32
    extra_heads_num_heads, extra_heads_dim   eot_horizons_s (0.5, 1, 2, 3 s for 4 heads), eot_head_dim (6)
    stt_config.audio_delay_seconds           text_delay_s = seconds (timestamps subtract it, as Kyutai's scripts
                                             do); delay_frames = ceil(seconds * 12.5), the frames a flush must
                                             drain (0.5 s -> 7, 2.5 s -> 32, as Kyutai's scripts pad and Unmute
                                             flushes)
    stt_config.audio_silence_prefix_seconds  silence_prefix_s

    LM tensors (release spelling; moshi's in-memory `in_projs.0.weight` / `out_projs.0.weight` accepted too)
    emb.{k}.weight                                   frontend.emb.{k}.weight
    text_emb.weight, text_linear.weight              the same names
    out_norm.alpha  (1, 1, d)                        out_norm.alpha  (d,)
    transformer.layers.{i}.self_attn.in_proj_weight  blocks.{i}.attn.in_proj.weight   (q, k, v; heads inside)
    transformer.layers.{i}.self_attn.out_proj.weight blocks.{i}.attn.out_proj.weight
    transformer.layers.{i}.norm{1,2}.alpha           blocks.{i}.norm{1,2}.alpha
    transformer.layers.{i}.gating.linear_{in,out}.weight   blocks.{i}.mlp.linear_{in,out}.weight
    extra_heads.{j}.weight                           extra_heads.{j}.weight

Frame alignment: which Mimi frame does step t see? moshi's `LMGen`, with STT's all-zero `delays`, keeps a
two-column token cache: call k writes the 32 codes it is given into column k and reads that column back, so
call k sees the codes given at call k and the text token written by call k-1, except at call 0, where
(offset 0 <= delay 0) text and audio are replaced by the initial tokens (text_card, card): the codes given
at call 0 are never seen. Each call returns the token it wrote (no lag: max delay 0), `step_with_extra_heads`
also softmax(head(out_norm(h))) per extra head. Two usages follow, and `lab.load(alignment=...)` picks one:

- "training" (default): step t sees frame t-1. This is how the model was trained (`LMModel.forward` shifts
  all streams right by one, initial tokens first), how Kyutai's Rust server runs it (moshi-core asr.rs:
  `next_token` hands each codebook the previous frame's code, id `card` at step 0), and what moshi's
  `run_inference.py` does by feeding the first frame twice. Our step t == its call t, which is given frame t-1.
- "scripts": step t sees frame t, frame 0 unheard. This is delayed-streams-modeling's PyTorch examples
  (`stt_from_file_pytorch.py`: `lm_gen.step(mimi.encode(frame))` once per frame). Our step t == its call t.
  The model then hears each frame one step earlier than in training, 80 ms ahead of its training alignment.

Either way our step t runs when frame t arrives (lab.stream), so "training" also matches the Rust server's
timing. moshi's embeddings map id -1 to a zero vector (`zero_idx`), but STT never feeds it: LMGen writes -1
only for classifier-free guidance, and its initial tokens are real rows (card, text_card), as ours are.
Mimi stays in fp32 whatever dtype the LM runs in: in bf16 it changes most codes.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import torch

from .errors import CheckpointError, diagnose_safetensors
from .mimi import CARD as MIMI_CARD
from .mimi import N_CODEBOOKS as MIMI_CODEBOOKS
from .mimi import MimiCheckpointError, MimiEncoder
from .model import DSM, FRAME_RATE, DSMConfig
from .tokenizer import Tokenizer

# moshi's defaults (models/loaders.py) for names a config.json leaves out.
DEFAULT_WEIGHTS = "model.safetensors"
DEFAULT_MIMI = "tokenizer-e351c8d8-checkpoint125.safetensors"
DEFAULT_TOKENIZER = "tokenizer_spm_32k_3.model"
# Kyutai's semantic VAD: head j predicts "no voice activity over the next h_j seconds" (stt-rs/src/main.rs).
VAD_HORIZONS_S = {4: (0.5, 1.0, 2.0, 3.0), 0: ()}
OTHER_MODEL_TYPES = {
    "moshi": "a Moshi speech-to-speech model (it generates audio through a depformer), not speech-to-text",
    "hibiki": "a Hibiki speech translation model, not speech-to-text",
    "tts": "a Kyutai text-to-speech (TTS) model, not speech-to-text",
}
# Settings our DSM does not implement, with the value it assumes. A config asking for another one is refused
# rather than loaded into a model that would compute something else.
ASSUMED = {"norm": "rms_norm_f32", "gating": "silu", "positional_embedding": "rope", "causal": True,
           "layer_scale": None, "kv_repeat": 1, "bias_proj": False, "norm_emb": False, "cross_attention": False,
           "demux_second_stream": False, "demux_second_text_stream": False, "weights_per_step": 0,
           "quantize": False, "lora": False}
# Tensors of a depformer (Moshi's audio generator), present in no STT release; ignored if there.
DEPFORMER_PREFIXES = ("depformer", "linears.")
_ALIASES = {"in_proj_weight": "in_proj", "in_projs.0.weight": "in_proj", "in_proj.weight": "in_proj",
            "out_proj.weight": "out_proj", "out_projs.0.weight": "out_proj"}
_LAYER = re.compile(r"transformer\.layers\.(\d+)\.(.+)")


def is_kyutai_config(raw: dict) -> bool:
    """A config.json of Kyutai's moshi family (STT, TTS, Moshi, Hibiki): lab.load hands it here."""
    if not isinstance(raw, dict):
        return False
    return (raw.get("model_type") in ("stt", *OTHER_MODEL_TYPES) or "mimi_name" in raw or "moshi_name" in raw
            or {"dim", "text_card", "n_q"} <= raw.keys())


# ------------------------------------------------------------------------------------------------ config


def _check_model_type(raw: dict, path: Path):
    kind = raw.get("model_type")
    if kind in OTHER_MODEL_TYPES:
        raise CheckpointError(f"{path}: model_type {kind!r} is {OTHER_MODEL_TYPES[kind]}; dsm-lab loads "
                              "Kyutai's STT models (kyutai/stt-1b-en_fr, kyutai/stt-2.6b-en)")
    if kind not in (None, "stt"):
        raise CheckpointError(f"{path}: unknown model_type {kind!r}; expected 'stt'")
    if int(raw.get("dep_q") or 0) > 0:
        raise CheckpointError(f"{path}: dep_q = {raw['dep_q']}: a depformer generating {raw['dep_q']} audio "
                              "codebooks, i.e. a Moshi speech-to-speech model, not speech-to-text (dep_q 0)")
    if kind is None and "stt_config" not in raw:
        raise CheckpointError(f"{path}: neither model_type 'stt' nor an stt_config: not a Kyutai STT config")


def _check_supported(raw: dict, path: Path):
    for key, assumed in ASSUMED.items():
        if key in raw and raw[key] != assumed and not (assumed in (0, False, None) and not raw[key]):
            raise CheckpointError(f"{path}: {key} = {raw[key]!r} is not supported (dsm-lab's DSM implements "
                                  f"{key} = {assumed!r}, as Kyutai's STT models use)")
    for key in ("conditioners", "fuser"):
        if raw.get(key):
            raise CheckpointError(f"{path}: {key} {raw[key]!r}: conditioned models are not supported")
    delays = raw.get("delays")
    if delays is not None and any(delays):
        raise CheckpointError(f"{path}: delays {delays} are not all zero; Kyutai STT streams are not delayed "
                              "against each other (the text delay is in the training data)")
    if raw.get("text_card_out") not in (None, raw.get("text_card")):
        raise CheckpointError(f"{path}: text_card_out {raw['text_card_out']} != text_card {raw.get('text_card')}"
                              " is not supported")


def _ffn_hidden(raw: dict, header: dict, weights: Path) -> int:
    """moshi's ActivationGating rule when hidden_scale is given, else the width the weights have."""
    if "hidden_scale" in raw:
        dim = int(raw["dim"])
        dim_feedforward = int(raw["hidden_scale"] * dim)
        return 21 * dim // 8 if dim_feedforward == 4 * dim else 2 * dim_feedforward // 3
    name = "transformer.layers.0.gating.linear_out.weight"
    if name not in header:
        raise CheckpointError(f"{weights}: missing tensor {name!r} (config.json has no hidden_scale either)")
    return int(header[name][1][1])


def _extra_heads(raw: dict, header: dict, path: Path) -> tuple[tuple[float, ...], int]:
    """End-of-turn horizons and head width, from config.json or, when it says nothing (the candle repo's
    config), from the weights: Kyutai ships the VAD heads in some repos and not in others."""
    in_file = sorted(int(m.group(1)) for n in header if (m := re.fullmatch(r"extra_heads\.(\d+)\.weight", n)))
    n = raw.get("extra_heads_num_heads")
    n = len(in_file) if n is None else int(n)
    if n not in VAD_HORIZONS_S:
        raise CheckpointError(f"{path}: {n} extra heads; their horizons are unknown (Kyutai's 4 end-of-turn "
                              "heads are 0.5, 1, 2 and 3 s)")
    dim = raw.get("extra_heads_dim") or (header[f"extra_heads.{in_file[0]}.weight"][1][0] if in_file else 6)
    return VAD_HORIZONS_S[n], int(dim)


def dsm_config(raw: dict, header: dict, path: Path, weights: Path, name: str = "kyutai-stt") -> DSMConfig:
    """Kyutai's config.json (+ the weights' header, for what the candle config omits) -> our DSMConfig."""
    _check_model_type(raw, path)
    _check_supported(raw, path)
    for key in ("dim", "num_heads", "num_layers", "text_card", "context"):
        if raw.get(key) is None:
            raise CheckpointError(f"{path}: config key {key!r} is missing")
    n_q, card = int(raw.get("n_q", MIMI_CODEBOOKS)), int(raw.get("card", MIMI_CARD))
    if n_q > MIMI_CODEBOOKS or card != MIMI_CARD:
        raise CheckpointError(f"{path}: n_q {n_q} x card {card} does not fit Mimi's {MIMI_CODEBOOKS} codebooks "
                              f"of {MIMI_CARD} codes")
    stt = raw.get("stt_config") or {}
    if "audio_delay_seconds" not in stt:  # moshi's scripts guess 0 or 5 s; timestamps and flush need the truth
        raise CheckpointError(f"{path}: stt_config.audio_delay_seconds is missing: the text delay of the model")
    horizons, head_dim = _extra_heads(raw, header, path)
    try:
        return DSMConfig(
            d_model=int(raw["dim"]), num_layers=int(raw["num_layers"]), num_heads=int(raw["num_heads"]),
            ffn_hidden=_ffn_hidden(raw, header, weights), context=int(raw["context"]),
            max_period=float(raw.get("max_period", 10_000)), norm_eps=1e-8,
            text_vocab_out=int(raw["text_card"]), text_vocab_in=int(raw["text_card"]) + 1,
            pad_id=int(raw.get("existing_text_padding_id", 3)), epad_id=int(raw.get("existing_text_end_padding_id", 0)),
            delay_frames=math.ceil(round(float(stt["audio_delay_seconds"]) * FRAME_RATE, 6)),
            text_delay_s=float(stt["audio_delay_seconds"]),
            audio_input="codebooks", n_codebooks=n_q, codebook_card=card, eot_horizons_s=horizons,
            eot_head_dim=head_dim, silence_prefix_s=float(stt.get("audio_silence_prefix_seconds", 0.0)), name=name)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model config: {e}") from e


# ----------------------------------------------------------------------------------------------- tensors


def read_header(weights: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) of every tensor in a safetensors file, without reading the data."""
    from safetensors import safe_open

    if not weights.is_file():
        raise CheckpointError(f"weights file not found: {weights} (config.json's moshi_name)")
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {n: (f.get_slice(n).get_dtype(), tuple(f.get_slice(n).get_shape())) for n in f.keys()}
    except Exception as e:  # safetensors raises its own error classes, OSError, ValueError...
        raise CheckpointError(f"{weights}: cannot read safetensors ({diagnose_safetensors(weights)}): {e}") from e


def our_name(kyutai_name: str) -> str | None:
    """A Kyutai LM tensor name -> ours; None for a name we do not know."""
    if m := _LAYER.fullmatch(kyutai_name):
        i, rest = m.groups()
        if rest.startswith("self_attn."):
            proj = _ALIASES.get(rest[len("self_attn."):])
            return f"blocks.{i}.attn.{proj}.weight" if proj else None
        if rest in ("norm1.alpha", "norm2.alpha"):
            return f"blocks.{i}.{rest}"
        if rest in ("gating.linear_in.weight", "gating.linear_out.weight"):
            return f"blocks.{i}.mlp.{rest[len('gating.'):]}"
        return None
    if re.fullmatch(r"emb\.\d+\.weight", kyutai_name):
        return "frontend." + kyutai_name
    if kyutai_name in ("text_emb.weight", "text_linear.weight", "out_norm.alpha") or \
            re.fullmatch(r"extra_heads\.\d+\.weight", kyutai_name):
        return kyutai_name
    return None


def kyutai_name(ours: str) -> str:
    """Our tensor name -> its release spelling in a Kyutai file (for error messages)."""
    if m := re.fullmatch(r"blocks\.(\d+)\.(.+)", ours):
        i, rest = m.groups()
        rest = {"attn.in_proj.weight": "self_attn.in_proj_weight", "attn.out_proj.weight": "self_attn.out_proj.weight"
                }.get(rest, rest.replace("mlp.", "gating."))
        return f"transformer.layers.{i}.{rest}"
    return ours.removeprefix("frontend.")


def map_tensors(header: dict, expected: dict[str, torch.Size], weights: Path) -> dict[str, str]:
    """ours -> Kyutai name for every tensor our model needs, after checking names, shapes and dtypes."""
    mapping, ignored = {}, []
    for name, (dtype, shape) in header.items():
        if name.startswith(DEPFORMER_PREFIXES):
            ignored.append(name)
            continue
        ours = our_name(name)
        if ours is None or ours not in expected:
            raise CheckpointError(f"{weights}: unexpected tensor {name!r} (not part of a Kyutai STT LM of this "
                                  "config.json)")
        if ours in mapping:
            raise CheckpointError(f"{weights}: tensor {name!r} and {mapping[ours]!r} are the same weight")
        if dtype not in ("F32", "BF16", "F16"):
            raise CheckpointError(f"{weights}: tensor {name!r} is {dtype}; quantized weights are not supported")
        want = tuple(expected[ours])
        if shape != want and not (ours.endswith(".alpha") and shape == (1, 1, *want)):
            raise CheckpointError(f"{weights}: tensor {name!r} has shape {shape}, config.json needs {want}")
        mapping[ours] = name
    missing = [kyutai_name(k) for k in expected if k not in mapping]
    if missing:
        raise CheckpointError(f"{weights}: missing tensor {missing[0]!r}" +
                              (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if ignored:
        warnings.warn(f"{weights}: ignored {len(ignored)} depformer tensors ({ignored[0]}, ...): speech-to-text "
                      "does not generate audio", stacklevel=3)
    return mapping


# ------------------------------------------------------------------------------------------------ loading


class Float32Mimi(MimiEncoder):
    """The Mimi encoder, kept in fp32 when the model around it changes dtype (`model.to(torch.bfloat16)`):
    Mimi in bf16 changes most codes. It still follows the model from device to device."""

    def _apply(self, fn, recurse=True):
        target = fn(torch.zeros(0, device=self.downsample.weight.device))  # where the caller sends us
        return super()._apply(lambda t: t.to(device=target.device), recurse)


def _model_name(folder: Path) -> str:
    """'kyutai/stt-1b-en_fr' for a Hugging Face cache snapshot, else the folder's name."""
    repo = next((p for p in folder.parts if p.startswith("models--")), None)
    return repo.removeprefix("models--").replace("--", "/") if repo else folder.name


def _file(folder: Path, raw: dict, key: str, default: str, what: str) -> Path:
    path = folder / str(raw.get(key) or default)
    if not path.is_file():
        raise CheckpointError(f"{what} file not found: {path} (config.json's {key})")
    return path


def load_kyutai(folder, raw: dict, dtype: torch.dtype = torch.float32, device="cpu",
                alignment: str = "training") -> DSM:
    """Build our DSM from a Kyutai STT folder: LM weights in `dtype` on `device`, Mimi in fp32, tokenizer."""
    if alignment not in ("training", "scripts"):
        raise ValueError(f"alignment must be 'training' or 'scripts', got {alignment!r}")
    folder = Path(folder)
    path = folder / "config.json"
    _check_model_type(raw, path)  # before looking for files: a TTS folder deserves the TTS message
    weights = folder / str(raw.get("moshi_name") or DEFAULT_WEIGHTS)
    header = read_header(weights)
    cfg = dsm_config(raw, header, path, weights, name=_model_name(folder))
    mimi_path = _file(folder, raw, "mimi_name", DEFAULT_MIMI, "Mimi codec")
    tokenizer_path = _file(folder, raw, "tokenizer_name", DEFAULT_TOKENIZER, "tokenizer")

    with torch.device("meta"):  # no memory and no random init for weights about to be replaced
        model = DSM(cfg)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    mapping = map_tensors(header, expected, weights)
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(weights), framework="pt") as f:  # one tensor at a time: peak memory ~ the model's
        for ours, theirs in mapping.items():
            # copy=True: get_tensor maps the file; a model of its own pages does not change if the file does.
            tensors[ours] = f.get_tensor(theirs).reshape(expected[ours]).to(device=device, dtype=dtype, copy=True)
    model.load_state_dict(tensors, strict=True, assign=True)
    model.step_positions = torch.zeros(1, dtype=torch.long, device=device)  # made on "meta" above
    model.step_active = torch.ones(1, dtype=torch.bool, device=device)

    try:
        model.mimi = Float32Mimi.from_safetensors(mimi_path).to(device)
        model.tokenizer = Tokenizer(tokenizer_path, pad_id=cfg.pad_id, epad_id=cfg.epad_id)
    except (MimiCheckpointError, ValueError) as e:
        raise CheckpointError(str(e)) from e
    if model.tokenizer.vocab_size != cfg.text_vocab_out:
        raise CheckpointError(f"{tokenizer_path}: tokenizer has {model.tokenizer.vocab_size} pieces, the model "
                              f"writes {cfg.text_vocab_out} text tokens (config.json's text_card): not its tokenizer")
    model.alignment, model.source = alignment, str(folder)
    return model.eval()
