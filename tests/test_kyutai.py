"""Kyutai STT checkpoints (lab.kyutai, lab.hub) against Kyutai's reference implementation, moshi.

A tiny random checkpoint in the release's exact format (config.json keys, tensor names, the real-size random
Mimi, a tokenizer of text_card pieces) goes through moshi as Kyutai's scripts use it (CheckpointInfo,
get_mimi, get_moshi, LMGen at temperature 0) and through lab.load + Streamer, on the same audio, for longer
than the LM's context so that both KV rings wrap.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import warnings

import pytest
import torch
from conftest import reference_or_skip
from kyutai_fixtures import (
    MIMI_FILENAME,
    STT_TOKENIZER,
    STT_WEIGHTS,
    ffn_hidden,
    random_stt_tensors,
    stt_config,
    write_random_mimi,
    write_random_stt_checkpoint,
)

import lab
from lab import CheckpointError
from lab.kyutai import Float32Mimi, our_name

reference_or_skip("moshi")

N_FRAMES = 112  # 8.96 s, against a context of 24 steps: the LM's ring wraps four times
FRAME = 1920
TOLERANCE = 1e-4  # fp32 text logits and end-of-turn probabilities


@pytest.fixture(scope="session")
def kyutai_root(tmp_path_factory):
    return tmp_path_factory.mktemp("kyutai-stt")


@pytest.fixture(scope="session")
def mimi_file(kyutai_root):
    return write_random_mimi(kyutai_root / MIMI_FILENAME, seed=0)


@pytest.fixture(scope="session")
def stt_folder(kyutai_root, mimi_file):
    return write_random_stt_checkpoint(kyutai_root / "stt-test", mimi_path=mimi_file)


def clip(n_frames: int, seed: int = 0) -> torch.Tensor:
    """A rising chirp under noise, a second of silence, a noise burst: codes and tokens that move."""
    gen = torch.Generator().manual_seed(seed)
    n = n_frames * FRAME
    t = torch.arange(n) / 24000
    x = 0.5 * torch.sin(2 * math.pi * torch.cumsum(100 + 3000 * t / t[-1], 0) / 24000)
    x += 0.05 * torch.randn(n, generator=gen)
    x[n // 3: n // 3 + 24000] = 0
    x[2 * n // 3: 2 * n // 3 + 4800] += 0.8 * torch.randn(4800, generator=gen)
    return x


@pytest.fixture(scope="session")
def audio():
    return clip(N_FRAMES)


def moshi_checkpoint(folder):
    from moshi.models import loaders

    return loaders.CheckpointInfo.from_hf_repo(  # local paths: nothing is downloaded
        "local", moshi_weights=folder / STT_WEIGHTS, mimi_weights=folder / MIMI_FILENAME,
        tokenizer=folder / STT_TOKENIZER, config_path=folder / "config.json")


@pytest.fixture(scope="session")
def moshi_side(stt_folder, audio):
    """moshi's Mimi codes of the clip, and LMGen run the two ways Kyutai's code runs it."""
    from moshi.models import LMGen

    info = moshi_checkpoint(stt_folder)
    lm, mimi = info.get_moshi(device="cpu", dtype=torch.float32), info.get_mimi(device="cpu")
    with torch.no_grad(), mimi.streaming(1):
        codes = [mimi.encode(f[None, None]) for f in audio.split(FRAME)]  # (1, 32, 1) each

    def run(feed):
        logits = []
        gen = LMGen(lm, temp=0, temp_text=0, on_text_logits_hook=lambda x: logits.append(x[0, 0, 0].clone()))
        tokens, eot = [], []
        with gen.streaming(1):
            for c in feed:
                out, heads = gen.step_with_extra_heads(c)
                tokens.append(int(out[0, 0, 0]))
                eot.append(torch.stack([h[0, 0, 0] for h in heads]))
        return tokens, torch.stack(logits), torch.stack(eot)

    # run_inference.py (as training and the Rust server): the first frame twice, so call t gets frame t-1.
    # stt_from_file_pytorch.py: each frame once, so call t gets frame t (frame 0 masked by the initial tokens).
    runs = {"training": run([codes[0], *codes[:-1]]), "scripts": run(codes)}
    return {"lm": lm, "codes": torch.cat(codes, -1)[0].T, "runs": runs}


@pytest.fixture(scope="session")
def lab_side(stt_folder, audio):
    out = {}
    for alignment in ("training", "scripts"):
        model = lab.load(stt_folder, alignment=alignment)
        with lab.record(model, "mimi.codes", "text.logits", "eot.probs") as rec:
            events = model.stream().feed(audio.numpy(), 24000)
        out[alignment] = {"model": model, "tokens": [e.token for e in events if isinstance(e, lab.Step)],
                          "codes": torch.from_numpy(rec["mimi.codes"])[:, 0],
                          "logits": torch.from_numpy(rec["text.logits"])[:, 0],
                          "eot": torch.from_numpy(rec["eot.probs"])[:, 0]}
    return out


def test_config_and_weights_land_where_moshi_puts_them(stt_folder, moshi_side, lab_side):
    model, config = lab_side["training"]["model"], stt_config()
    cfg = model.cfg
    assert (cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.context) == (64, 2, 4, 24)
    assert cfg.ffn_hidden == ffn_hidden(config) == 176  # 2 * int(4.125 * 64) // 3
    assert (cfg.text_vocab_out, cfg.text_vocab_in, cfg.pad_id, cfg.epad_id) == (96, 97, 3, 0)
    assert (cfg.delay_frames, cfg.delay_s, cfg.silence_prefix_s) == (7, 0.5, 0.0)
    assert cfg.eot_horizons_s == (0.5, 1.0, 2.0, 3.0)
    assert cfg.audio_input == "codebooks" and cfg.max_period == 100_000 and cfg.norm_eps == 1e-8
    assert isinstance(model.mimi, Float32Mimi) and model.tokenizer.vocab_size == 96
    ours = {k: v for k, v in model.state_dict().items() if not k.startswith("mimi.")}
    theirs = moshi_side["lm"].state_dict()  # moshi's in-memory names: in_projs.0.weight, ...
    assert len(ours) == len(theirs) and sum(v.numel() for v in ours.values()) == sum(v.numel() for v in theirs.values())
    assert model.n_params == sum(v.numel() for v in theirs.values())  # the LM's own; Mimi's apart:
    assert model.info.extra["mimi_encoder_params"] == sum(p.numel() for p in model.mimi.parameters()) > 0
    for name, value in theirs.items():
        assert torch.equal(ours[our_name(name)], value.reshape(ours[our_name(name)].shape)), name


@pytest.mark.parametrize("alignment", ["training", "scripts"])
def test_streaming_matches_moshi(moshi_side, lab_side, alignment):
    ours, (tokens, logits, eot) = lab_side[alignment], moshi_side["runs"][alignment]
    assert torch.equal(ours["codes"], moshi_side["codes"])  # Mimi: every code of every frame
    assert len(ours["tokens"]) == len(tokens) == N_FRAMES
    assert len(set(tokens)) >= 8  # the comparison means something: tokens follow the audio
    logit_diff = (ours["logits"] - logits).abs().max().item()
    eot_diff = (ours["eot"] - eot).abs().max().item()
    same = sum(a == b for a, b in zip(ours["tokens"], tokens))
    print(f"\n{alignment}: {same}/{len(tokens)} identical tokens ({len(set(tokens))} distinct), max |text logit "
          f"diff| {logit_diff:.2e}, max |p_eot diff| {eot_diff:.2e}")
    assert ours["tokens"] == tokens
    assert logit_diff < TOLERANCE and eot_diff < TOLERANCE


def test_the_two_alignments_are_one_frame_apart(lab_side):
    training, scripts = lab_side["training"], lab_side["scripts"]
    assert torch.equal(training["logits"][0], scripts["logits"][0])  # step 0: initial tokens either way
    assert training["tokens"] != scripts["tokens"]
    assert training["model"].info.alignment == "training" and scripts["model"].info.alignment == "scripts"


def test_moshi_names_and_bf16_weights(tmp_path, mimi_file, stt_folder):
    tensors = random_stt_tensors(stt_config(), dtype=torch.bfloat16)
    moshi_names = {k.replace("in_proj_weight", "in_projs.0.weight").replace("out_proj.weight", "out_projs.0.weight"): v
                   for k, v in tensors.items()}
    folder = write_random_stt_checkpoint(tmp_path / "bf16", tensors=moshi_names, mimi_path=mimi_file)
    model = lab.load(folder)
    assert next(model.parameters()).dtype == torch.float32
    ref = lab.load(stt_folder)
    for name, value in ref.state_dict().items():
        if not name.startswith("mimi."):  # the same seed, rounded to bf16 on disk, then widened exactly
            assert torch.equal(model.state_dict()[name], value.bfloat16().float()), name


def test_bf16_model_keeps_mimi_in_fp32(stt_folder, moshi_side, audio):
    model = lab.load(stt_folder, dtype="bfloat16")
    assert model.text_linear.weight.dtype == torch.bfloat16 and model.mimi.downsample.weight.dtype == torch.float32
    with lab.record(model, "mimi.codes") as rec:
        t = model.transcribe((audio[: 20 * FRAME].numpy(), 24000))
    assert torch.equal(torch.from_numpy(rec["mimi.codes"])[:20, 0], moshi_side["codes"][:20])
    assert len(t.steps) == 20 + model.cfg.delay_frames + 1  # the clip, then the flush
    model.to(torch.float32).to(torch.bfloat16)  # casting the model leaves Mimi alone
    assert model.mimi.downsample.weight.dtype == torch.float32 and model.frontend.emb[0].weight.dtype == torch.bfloat16


def test_candle_style_config_and_no_vad_heads(tmp_path, mimi_file, stt_folder):
    # The candle repo's config is read by Rust code that hard-codes the FFN rule and the 4 VAD heads.
    config = {k: v for k, v in stt_config().items() if k in (
        "dim", "text_card", "n_q", "card", "num_heads", "num_layers", "context", "max_period", "causal",
        "stt_config", "mimi_name", "tokenizer_name")}
    folder = write_random_stt_checkpoint(tmp_path / "candle", config, tensors=random_stt_tensors(stt_config()),
                                         mimi_path=mimi_file)
    model, full = lab.load(folder), lab.load(stt_folder)
    assert dataclasses.replace(model.cfg, name="") == dataclasses.replace(full.cfg, name="")
    assert all(torch.equal(v, full.state_dict()[k]) for k, v in model.state_dict().items())
    # Like stt-2.6b-en: no VAD heads, a 2.5 s delay and a 1 s silence prefix.
    big = stt_config(extra_heads=0, delay_s=2.5, prefix_s=1.0)
    model = lab.load(write_random_stt_checkpoint(tmp_path / "no-vad", big, mimi_path=mimi_file))
    assert (model.cfg.eot_horizons_s, model.cfg.delay_frames, model.cfg.delay_s, model.cfg.silence_prefix_s) == \
        ((), 32, 2.5, 1.0)
    t = model.transcribe((clip(10).numpy(), 24000))
    assert len(t.steps) == 13 + 10 + 32 + 1  # 12.5 frames of prefix: flush completes the last half frame


def _break(folder, config=None, drop=(), add=None, rename=None):
    """Rewrite a copied checkpoint folder: config changes, tensors dropped, added or renamed."""
    from safetensors.torch import load_file, save_file

    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**raw, **(config or {})}))
    tensors = {(rename or {}).get(k, k): v for k, v in load_file(folder / STT_WEIGHTS).items() if k not in drop}
    save_file({**tensors, **(add or {})}, folder / STT_WEIGHTS)


BROKEN = {
    "tts": (dict(config={"model_type": "tts"}), r"config\.json: model_type 'tts' is a Kyutai text-to-speech"),
    "moshi": (dict(config={"model_type": "moshi", "dep_q": 8}), r"Moshi speech-to-speech"),
    "depformer": (dict(config={"model_type": None, "dep_q": 16}), r"dep_q = 16: a depformer .*speech-to-speech"),
    "layer scale": (dict(config={"layer_scale": 0.01}), r"layer_scale = 0.01 is not supported"),
    "delays": (dict(config={"delays": [0] + [1] * 32}), r"delays .* not all zero"),
    "no delay": (dict(config={"stt_config": {}}), r"stt_config\.audio_delay_seconds is missing"),
    "missing": (dict(drop=("transformer.layers.1.gating.linear_out.weight",)),
                r"model\.safetensors: missing tensor 'transformer\.layers\.1\.gating\.linear_out\.weight'"),
    "unexpected": (dict(add={"transformer.layers.0.self_attn.in_proj_bias": torch.zeros(192)}),
                   r"model\.safetensors: unexpected tensor 'transformer\.layers\.0\.self_attn\.in_proj_bias'"),
    "shape": (dict(config={"num_heads": 8, "dim": 32}), r"tensor 'emb\.0\.weight' has shape \(2049, 64\), "
                                                        r"config\.json needs \(2049, 32\)"),
    "vad heads": (dict(drop=("extra_heads.3.weight",)), r"missing tensor 'extra_heads\.3\.weight'"),
    "mimi": (dict(config={"mimi_name": "no-mimi.safetensors"}), r"Mimi codec file not found: .*no-mimi\.safetensors"),
    "tokenizer": (dict(config={"tokenizer_name": "nope.model"}), r"tokenizer file not found: .*nope\.model"),
    "vocab": (dict(config={"text_card": 95}), r"tokenizer has 96 pieces, the model writes 95 text tokens"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_refused_with_an_error_naming_what_is_wrong(tmp_path, stt_folder, case):
    kwargs, message = BROKEN[case]
    if case == "vocab":  # a model of text_card 95 with the 96-piece tokenizer
        tensors = random_stt_tensors(stt_config(text_card=95))
        folder = write_random_stt_checkpoint(tmp_path / "v", stt_config(), tensors=tensors,
                                             mimi_path=stt_folder / MIMI_FILENAME)
    else:
        folder = shutil.copytree(stt_folder, tmp_path / "broken", copy_function=_link)
    _break(folder, **kwargs)
    with pytest.raises(CheckpointError, match=message):
        lab.load(folder)


def _link(src, dst):
    if src.endswith(".safetensors") and MIMI_FILENAME in src:
        return os.link(src, dst)
    return shutil.copy2(src, dst)


def test_depformer_tensors_are_ignored_with_a_note(tmp_path, stt_folder):
    folder = shutil.copytree(stt_folder, tmp_path / "dep", copy_function=_link)
    _break(folder, add={"depformer_in.0.weight": torch.zeros(32, 64), "linears.0.weight": torch.zeros(2048, 32)})
    with pytest.warns(UserWarning, match=r"ignored 2 depformer tensors"):
        lab.load(folder)


def test_batch_with_an_idle_stream(stt_folder, audio):
    """A stream that sits frames out keeps its Mimi and LM state: its neighbour's results are its own."""
    model = lab.load(stt_folder)
    a, b = audio[: 16 * FRAME].numpy(), clip(11, seed=1).numpy()
    streams, got, fed_b = model.streams(2), [[], []], 0
    for k in range(16):
        chunk_b = None if 4 <= k < 9 else b[fed_b * FRAME: (fed_b + 1) * FRAME]  # b sits out calls 4..8
        fed_b += chunk_b is not None
        for i, events in enumerate(streams.feed([a[k * FRAME: (k + 1) * FRAME], chunk_b], 24000)):
            got[i] += [e.token for e in events if isinstance(e, lab.Step)]
    for tokens, x in zip(got, (a, b)):
        assert tokens == [e.token for e in model.stream().feed(x, 24000) if isinstance(e, lab.Step)]
    assert len(got[1]) == 11


def test_transcribe_hooks_and_cli(stt_folder, audio, tmp_path, capsys):
    import soundfile as sf

    from lab.cli import main

    model = lab.load(stt_folder)
    assert model.hook_names()[0] == "mimi.codes"
    t = model.transcribe((audio[: 30 * FRAME].numpy(), 24000))
    assert len(t.steps) == 30 + 8 and list(t.steps.columns[4:8]) == ["p_eot_0.5s", "p_eot_1s", "p_eot_2s", "p_eot_3s"]
    # Timestamps subtract the configured 0.5 s (as Kyutai's scripts do), not the 7 frames the flush drains.
    starts = [w.start_s + 0.5 for w in t.words]
    assert starts and all(abs(s * 12.5 - round(s * 12.5)) < 1e-3 for s in starts)
    sf.write(tmp_path / "clip.wav", audio[: 30 * FRAME].numpy(), 24000)
    assert main(["transcribe", str(tmp_path / "clip.wav"), "--model", str(stt_folder), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[-1] == {"type": "transcript", "text": t.text}


# --------------------------------------------------------------------------------------------------- hub


@pytest.fixture
def fake_hub(monkeypatch, stt_folder, tmp_path):
    """huggingface_hub.snapshot_download over a fake remote (the test folder) and a fake cache."""
    import huggingface_hub

    calls, cached = [], {}

    def snapshot_download(repo_id, allow_patterns=None, local_files_only=False, **_):
        calls.append((repo_id, list(allow_patterns), local_files_only))
        folder = cached.setdefault(repo_id, tmp_path / ("cache-" + repo_id.replace("/", "--")))
        if local_files_only and not folder.exists():
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        if not local_files_only:
            folder.mkdir(exist_ok=True)
            for name in allow_patterns:
                if (stt_folder / name).exists() and not (folder / name).exists():
                    os.link(stt_folder / name, folder / name)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return calls


def test_hub_fetches_only_what_the_config_names(fake_hub, capsys):
    from lab.cli import main

    needed = ["config.json", STT_WEIGHTS, MIMI_FILENAME, STT_TOKENIZER]
    model = lab.load("someone/stt-test")  # unknown repo: config.json first, then the files it names
    assert model.cfg.d_model == 64 and model.cfg.name.endswith("someone--stt-test")
    assert fake_hub == [("someone/stt-test", ["config.json"], True), ("someone/stt-test", ["config.json"], False),
                        ("someone/stt-test", needed, True), ("someone/stt-test", needed, False)]
    fake_hub.clear()
    assert main(["download", "someone/stt-test"]) == 0  # now from the cache alone
    assert fake_hub == [("someone/stt-test", ["config.json"], True)]
    assert STT_TOKENIZER in capsys.readouterr().out


def test_hub_known_repos_and_offline(fake_hub, monkeypatch):
    from lab.hub import KYUTAI_REPOS, snapshot

    assert set(KYUTAI_REPOS) == {"kyutai/stt-1b-en_fr", "kyutai/stt-1b-en_fr-candle", "kyutai/stt-2.6b-en"}
    with pytest.raises(CheckpointError, match=r"the repo has no file 'tokenizer_en_audio_4000\.model'"):
        snapshot("kyutai/stt-2.6b-en")  # its four files in one request; our fake remote lacks them
    assert fake_hub[-1] == ("kyutai/stt-2.6b-en", ["config.json", "model.safetensors", MIMI_FILENAME,
                                                   "tokenizer_en_audio_4000.model"], False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"kyutai/stt-1b-en_fr: not in the Hugging Face cache and "
                                              r"HF_HUB_OFFLINE is set; run `dsm-lab download kyutai/stt-1b-en_fr`"):
        snapshot("kyutai/stt-1b-en_fr")


def test_real_hf_cache_layout_offline(monkeypatch, tmp_path, stt_folder):
    """A repo laid out in the cache as huggingface_hub stores it loads with HF_HUB_OFFLINE=1, by its id."""
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--kyutai--stt-1b-en_fr"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    config = {**stt_config(), "tokenizer_name": "tokenizer_en_fr_audio_8000.model"}
    (snap / "config.json").write_text(json.dumps(config))
    for src, dst in ((STT_WEIGHTS, STT_WEIGHTS), (MIMI_FILENAME, MIMI_FILENAME),
                     (STT_TOKENIZER, "tokenizer_en_fr_audio_8000.model")):
        os.link(stt_folder / src, snap / dst)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and nothing to complain about
        model = lab.load("kyutai/stt-1b-en_fr")
    assert model.cfg.name == "kyutai/stt-1b-en_fr" and model.source == str(snap)
