"""Model folders: save/load round trip, and every broken folder refused with an error naming file and tensor."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from conftest import speechlike
from safetensors.torch import load_file, save_file

import lab
from lab import CheckpointError


@pytest.fixture
def broken(tiny_model_dir, tmp_path):
    """A copy of the tiny model folder to break, and its tensors."""
    folder = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    return folder, load_file(str(folder / "model.safetensors"))


def test_save_and_load_give_identical_outputs(tiny_model, tiny_model_dir):
    assert sorted(p.name for p in tiny_model_dir.iterdir()) == ["config.json", "model.safetensors", "tokenizer.model"]
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["format"] == "dsm-lab" and config["config"]["context"] == 16
    loaded = lab.load(tiny_model_dir)
    assert loaded.cfg == tiny_model.cfg
    assert loaded.source == str(tiny_model_dir) and loaded.info.dtype == "float32"
    for name, value in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    audio = (speechlike(2.0, 48_000), 48_000)
    a, b = tiny_model.transcribe(audio), loaded.transcribe(audio)
    assert a.steps["token"].tolist() == b.steps["token"].tolist() and a.words == b.words
    assert (a.steps.filter(like="p_eot") == b.steps.filter(like="p_eot")).all().all()
    # Saving a loaded model again gives the same folder (the tokenizer is copied, not lost).
    again = lab.save(loaded, tiny_model_dir.parent / "again")
    assert lab.load(again).transcribe(audio).steps["token"].tolist() == a.steps["token"].tolist()


def test_load_options(tiny_model_dir):
    assert lab.load(tiny_model_dir, alignment="scripts").alignment == "scripts"
    with pytest.raises(ValueError, match="alignment"):
        lab.load(tiny_model_dir, alignment="ahead")


def test_models_are_found_by_name_in_dsm_lab_models(tiny_model_dir, tmp_path, monkeypatch):
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "mine")
    with pytest.raises(CheckpointError, match="mine: no such model folder"):
        lab.load("mine")
    embedded = lab.checkpoint.default_model_dir()
    monkeypatch.setenv("DSM_LAB_MODELS", str(tmp_path / "models"))
    assert lab.load("mine").cfg == lab.load(tiny_model_dir).cfg
    # The folder is added to the embedded models, not put in their place: the default and the sweep stay.
    assert lab.checkpoint.default_model_dir() == embedded
    assert lab.checkpoint.resolve("dsm-tiny-en-d2").parent == embedded.parent
    # A folder there named like an embedded model comes first (a retrained default, tried before shipping it).
    shutil.copytree(tiny_model_dir, tmp_path / "retrained" / "dsm-tiny-en")
    monkeypatch.setenv("DSM_LAB_MODELS", os.pathsep.join([str(tmp_path / "retrained"), str(tmp_path / "models")]))
    assert lab.load().source == str(tmp_path / "retrained" / "dsm-tiny-en")
    assert lab.load("mine").source == str(tmp_path / "models" / "mine")


def test_other_dtypes_stream(tiny_model_dir):
    """A model loaded in bf16 / fp16 / fp64 streams (the frontend's spectrum stays fp32) and agrees with fp32."""
    audio = (speechlike(3.0, 48_000, seed=3), 48_000)
    reference = lab.load(tiny_model_dir).transcribe(audio).steps["token"].to_numpy()
    for dtype, agreement in [("float64", 1.0), ("float16", 0.9), ("bfloat16", 0.8)]:
        model = lab.load(tiny_model_dir, dtype=dtype)
        assert model.info.dtype == dtype
        tokens = model.transcribe(audio).steps["token"].to_numpy()
        assert len(tokens) == len(reference) and (tokens == reference).mean() >= agreement, dtype


def test_missing_tensor(broken):
    folder, tensors = broken
    del tensors["blocks.1.attn.in_proj.weight"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: missing tensor 'blocks\.1\.attn\.in_proj\.weight'"):
        lab.load(folder)


def test_unexpected_tensor(broken):
    folder, tensors = broken
    tensors["blocks.2.attn.in_proj.weight"] = torch.zeros(96, 32)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: unexpected tensor 'blocks\.2\.attn\.in_proj"):
        lab.load(folder)


def test_wrong_shape(broken):
    folder, tensors = broken
    tensors["text_emb.weight"] = torch.zeros(64, 32)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor 'text_emb\.weight' has shape \(64, 32\), "
                                              r"the config needs \(65, 32\)"):
        lab.load(folder)


def test_truncated_file_names_the_tensor_cut_off(broken):
    folder, _ = broken
    path = folder / "model.safetensors"
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    last = max((v["data_offsets"][1], name) for name, v in header.items() if name != "__metadata__")[1]
    path.write_bytes(data[:-100])  # the last tensor of the data section loses its end
    with pytest.raises(CheckpointError, match="model.safetensors") as err:
        lab.load(folder)
    assert f"tensor {last!r}" in str(err.value) and "truncated" in str(err.value)
    path.write_bytes(data[:20])  # not even the whole header
    with pytest.raises(CheckpointError, match=r"model\.safetensors: .*truncated"):
        lab.load(folder)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt"])
def test_pickle_files_are_refused(broken, tmp_path, name):
    folder, tensors = broken
    torch.save(tensors, folder / name)
    with pytest.raises(CheckpointError, match=f"{name}: pickle checkpoints are refused"):
        lab.load(folder)
    torch.save(tensors, tmp_path / name)
    with pytest.raises(CheckpointError, match="pickle checkpoints .* refused.*safetensors"):
        lab.load(tmp_path / name)


def test_folders_that_are_not_models(tmp_path, tiny_model_dir):
    with pytest.raises(CheckpointError, match="no-such-folder: no such model folder"):
        lab.load(tmp_path / "no-such-folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty: no config.json"):
        lab.load(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="expected a model folder"):
        lab.load(tiny_model_dir / "config.json")
    (tmp_path / "empty" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        lab.load(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"format": "dsm-lab", "config": {"n_layer": 2}}))
    with pytest.raises(CheckpointError, match="bad model config.*n_layer"):
        lab.load(tmp_path / "empty")


def test_missing_weights_and_tokenizer(broken):
    folder, _ = broken
    (folder / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer file not found: .*broken/tokenizer\.model"):
        lab.load(folder)
    (folder / "tokenizer.model").write_bytes(b"not a sentencepiece model")
    with pytest.raises(CheckpointError, match=r"broken/tokenizer\.model"):
        lab.load(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"weights file not found: .*broken/model\.safetensors"):
        lab.load(folder)


def test_hub_repo_not_cached_offline(monkeypatch, tmp_path):
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    # huggingface_hub reads HF_HOME once, at import: point an already imported copy at the empty cache too.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    with pytest.raises(CheckpointError, match=r"kyutai-test/no-such-stt: not in the Hugging Face cache and "
                                              r"HF_HUB_OFFLINE is set.*dsm-lab download"):
        lab.load("kyutai-test/no-such-stt")
    assert list(hf_home.iterdir()) in ([], [hf_home / "hub"])  # nothing downloaded
