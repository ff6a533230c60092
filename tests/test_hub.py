"""lab.hub against huggingface_hub's own cache code, on a cache folder written here in the layout
huggingface_hub writes (blobs named by their hash, snapshot files linking to them, refs/main naming the
snapshot), offline. Only "not in the cache" counts as not cached: a broken cache, a corrupt file or a bad
repo id is reported as itself, naming what is wrong, and nothing tries to download."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch

import lab
from lab.errors import CheckpointError

REVISION = "3" * 40


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline; huggingface_hub reads the variables once, at import, so its
    constants are pointed there too. An endpoint that refuses connections: a download attempt fails fast."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    return cache


def cache_repo(cache, repo_id: str, folder) -> tuple:
    """Put a model folder's files in the cache as huggingface_hub does; returns (repo folder, snapshot)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for f in sorted(folder.iterdir()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / f.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return repo, snapshot


def test_a_cached_repo_loads_by_its_id_offline(hf_cache, tiny_model_dir):
    _, snapshot = cache_repo(hf_cache, "someone/tiny-stt", tiny_model_dir)
    model = lab.load("someone/tiny-stt")
    assert model.source == str(snapshot)
    same = lab.load(tiny_model_dir).state_dict()
    assert all(torch.equal(v, same[k]) for k, v in model.state_dict().items())  # the blobs, through the links


def test_a_repo_not_in_the_cache_says_so(hf_cache):
    with pytest.raises(CheckpointError, match=r"someone/absent: not in the Hugging Face cache and HF_HUB_OFFLINE "
                                              r"is set; run `dsm-lab download someone/absent`"):
        lab.load("someone/absent")


@pytest.mark.parametrize("offline", [True, False])
def test_a_broken_cache_is_not_taken_for_a_cache_miss(hf_cache, tiny_model_dir, monkeypatch, offline):
    """refs/main unreadable (here a folder, as a bad copy can leave it): the error names the cache and the
    cause; online too, it is not "not cached, download it" (a download would write the same broken folder)."""
    repo, _ = cache_repo(hf_cache, "someone/tiny-stt", tiny_model_dir)
    (repo / "refs" / "main").unlink()
    (repo / "refs" / "main").mkdir()
    if not offline:
        monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(CheckpointError, match=rf"someone/tiny-stt: the Hugging Face cache at {hf_cache} cannot "
                                              r"be read \(IsADirectoryError: .*refs/main'\)") as caught:
        lab.load("someone/tiny-stt")
    assert "download" not in str(caught.value)


def test_a_corrupt_file_in_the_cache_is_named(hf_cache, tiny_model_dir):
    repo, snapshot = cache_repo(hf_cache, "someone/tiny-stt", tiny_model_dir)
    weights = (snapshot / "model.safetensors").resolve()
    weights.write_bytes(weights.read_bytes()[:1000])  # a download cut short
    with pytest.raises(CheckpointError, match=rf"{snapshot}/model\.safetensors") as caught:
        lab.load("someone/tiny-stt")
    assert "not in the Hugging Face cache" not in str(caught.value)


def test_a_bad_repo_id_is_named(hf_cache):
    with pytest.raises(CheckpointError, match=r"someone/no such repo: no such model folder, and not a valid "
                                              r"Hugging Face repo id"):
        lab.load("someone/no such repo")
