"""lab.mimi against Kyutai's reference (moshi), on a random checkpoint at Mimi's real size."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import reference_or_skip
from kyutai_fixtures import MIMI_FILENAME, moshi_mimi, write_random_mimi
from safetensors.torch import load_file, save_file

from lab.mimi import FRAME_SIZE, N_CODEBOOKS, MimiCheckpointError, MimiEncoder, MimiState

reference_or_skip("moshi")

# 140 frames = 280 transformer steps (11.2 s): past the 250-step attention window, so the key/value
# ring wraps and the window slides for the last 15 frames.
N_FRAMES = 140


def clip(n_frames: int, seed: int) -> torch.Tensor:
    """(n_frames * 1920,) of varied signal: a rising chirp under noise, a second of silence, a burst."""
    gen = torch.Generator().manual_seed(seed)
    n = n_frames * FRAME_SIZE
    t = torch.arange(n) / 24000
    freq = 100 + 3000 * t / t[-1] + 50 * seed
    x = 0.5 * torch.sin(2 * math.pi * torch.cumsum(freq, 0) / 24000) + 0.05 * torch.randn(n, generator=gen)
    x[n // 3 : n // 3 + 24000] = 0
    x[2 * n // 3 : 2 * n // 3 + 4800] += 0.8 * torch.randn(4800, generator=gen)
    return x


def stream(encoder: MimiEncoder, audio: torch.Tensor, state: MimiState | None = None) -> torch.Tensor:
    """Ours, frame by frame: (B, T) -> (B, 32, T // 1920)."""
    state = state or encoder.init_state(audio.shape[0])
    frames = audio.split(FRAME_SIZE, dim=-1)
    return torch.stack([encoder.encode_step(f, state) for f in frames], dim=-1)


@torch.no_grad()
def stream_moshi(model, audio: torch.Tensor) -> torch.Tensor:
    """moshi's streaming encode, one 1920-sample frame per call, as its STT server does."""
    with model.streaming(audio.shape[0]):
        return torch.cat([model.encode(f[:, None]) for f in audio.split(FRAME_SIZE, dim=-1)], dim=-1)


@pytest.fixture(scope="session")
def mimi_path(tmp_path_factory):
    return write_random_mimi(tmp_path_factory.mktemp("kyutai") / MIMI_FILENAME, seed=0)


@pytest.fixture(scope="session")
def moshi_model(mimi_path):
    return moshi_mimi(mimi_path)


@pytest.fixture(scope="session")
def encoder(mimi_path):
    return MimiEncoder.from_safetensors(mimi_path)


@pytest.fixture(scope="session")
def audio():
    return clip(N_FRAMES, seed=0)[None]


@pytest.fixture(scope="session")
def streamed(encoder, audio):
    return stream(encoder, audio)


@pytest.fixture(scope="session")
def encoder_tensors(mimi_path):
    """The fixture file's encoder-side tensors, to write broken variants from."""
    keep = ("encoder.", "encoder_transformer.", "downsample.", "quantizer.")
    return {k: v for k, v in load_file(mimi_path).items() if k.startswith(keep)}


def test_codes_identical_to_moshi_streaming(moshi_model, audio, streamed):
    expected = stream_moshi(moshi_model, audio)
    assert streamed.shape == expected.shape == (1, N_CODEBOOKS, N_FRAMES)
    assert streamed.dtype == torch.int64
    # A meaningful comparison needs codes that follow the audio, in every codebook.
    assert all(len(set(row.tolist())) > 10 for row in expected[0])
    # Exact equality, not a tolerance: we run moshi's float32 operations on the same operands in the
    # same order (conv windows, ring-buffer layout and mask, RoPE in float32, cdist's matmul form), so
    # the latents match bit for bit and every argmin picks the same entry.
    assert torch.equal(streamed, expected)


def test_batched_streams_identical_to_moshi_and_to_single_streams(encoder, moshi_model):
    a, b = clip(20, seed=1), clip(20, seed=2)
    both = stream(encoder, torch.stack([a, b]))
    assert torch.equal(both, stream_moshi(moshi_model, torch.stack([a, b])))
    # Not bit-exact by nature: a matmul over 2 rows sums in another order than over 1, so latents of
    # a stream differ by ~1e-5 with and without a neighbour (moshi's too). Codes only differ where two
    # codebook entries are that close to tied; none are on these clips, so we demand equality.
    assert torch.equal(both[0], stream(encoder, a[None])[0])
    assert torch.equal(both[1], stream(encoder, b[None])[0])


def test_whole_clip_is_streaming_by_default(encoder, audio, streamed):
    # The default runs the streaming computation itself; a trailing partial frame is dropped.
    assert torch.equal(encoder.encode(audio[:, : 20 * FRAME_SIZE + 1000]), streamed[..., :20])


def test_whole_clip_in_multi_frame_chunks_equals_streaming(encoder, audio, streamed):
    # Chunks of 50 frames: boundaries at frames 50 and 100, a short last chunk, and the ring wrap at
    # frame 125 inside a chunk. Within a chunk, attention must hide what moshi's 250-slot ring has
    # already overwritten (the first step of each frame sees 249 keys, not 250); a plain 250-step
    # window changes a code here. Like batching streams, chunking reassociates float sums (latents
    # move by ~1e-5), so a near-tied codebook choice could flip on other hardware; none does here.
    assert torch.equal(encoder.encode(audio, chunk_frames=50), streamed)


def test_reset_one_stream_leaves_the_other_alone(encoder):
    a, b, c = clip(12, seed=3), clip(24, seed=4), clip(12, seed=5)
    state = encoder.init_state(2)
    first = stream(encoder, torch.stack([a, b[: 12 * FRAME_SIZE]]), state)

    row1 = [t[1].clone() for t in (*state.conv, state.keys.transpose(0, 1), state.key_pos, state.position)]
    encoder.reset_state(state, 0)
    after = [t[1] for t in (*state.conv, state.keys.transpose(0, 1), state.key_pos, state.position)]
    assert all(torch.equal(x, y) for x, y in zip(row1, after))
    assert state.position.tolist() == [0, 24] and not state.primed[0] and state.primed[1]

    second = stream(encoder, torch.stack([c, b[12 * FRAME_SIZE :]]), state)
    assert torch.equal(second[0], stream(encoder, c[None])[0])  # row 0 starts afresh
    assert torch.equal(torch.cat([first[1], second[1]], -1), stream(encoder, b[None])[0])  # row 1 never noticed


def test_inactive_stream_keeps_its_state(encoder):
    a, b = clip(10, seed=6), clip(10, seed=7)
    junk = torch.randn(3, FRAME_SIZE, generator=torch.Generator().manual_seed(8))
    # Row 0 plays a; row 1 plays b but sits out frames 4-6, fed junk meanwhile.
    rows_b = [*b.split(FRAME_SIZE)[:4], *junk, *b.split(FRAME_SIZE)[4:]]
    rows_a = list(a.split(FRAME_SIZE)) + [torch.zeros(FRAME_SIZE)] * 3
    state, codes_b, codes_a = encoder.init_state(2), [], []
    for t, (fa, fb) in enumerate(zip(rows_a, rows_b)):
        active = torch.tensor([t < 10, not 4 <= t < 7])
        codes = encoder.encode_step(torch.stack([fa, fb]), state, active=active)
        codes_a += [codes[0]] if active[0] else []
        codes_b += [codes[1]] if active[1] else []
    assert state.position.tolist() == [20, 20]
    assert torch.equal(torch.stack(codes_a, -1), stream(encoder, a[None])[0])
    assert torch.equal(torch.stack(codes_b, -1), stream(encoder, b[None])[0])


def test_decoder_tensors_are_ignored(tmp_path, mimi_path, encoder_tensors, audio, streamed):
    assert any(k.startswith("decoder.") for k in load_file(mimi_path))  # the fixture has a decoder...
    garbage = {"decoder.model.0.conv.conv.weight": torch.full((3,), float("nan")),
               "decoder_transformer.transformer.layers.0.linear1.weight": torch.zeros(1, 1)}
    path = tmp_path / "encoder_plus_garbage.safetensors"
    save_file({**encoder_tensors, **garbage}, str(path))  # ...and this one has only a broken one
    assert torch.equal(MimiEncoder.from_safetensors(path).encode(audio[:, : 20 * FRAME_SIZE]),
                       streamed[..., :20])


@pytest.mark.parametrize("name", ["encoder_transformer.transformer.layers.5.linear2.weight",
                                  "quantizer.rvq_rest.vq.layers.30._codebook.embedding_sum"])
def test_missing_encoder_tensor_is_named(tmp_path, encoder_tensors, name):
    path = tmp_path / "missing.safetensors"
    save_file({k: v for k, v in encoder_tensors.items() if k != name}, str(path))
    with pytest.raises(MimiCheckpointError) as err:
        MimiEncoder.from_safetensors(path)
    assert isinstance(err.value, ValueError)
    assert name in str(err.value) and str(path) in str(err.value)


def test_misshaped_encoder_tensor_is_named(tmp_path, encoder_tensors):
    name = "downsample.conv.conv.conv.weight"
    path = tmp_path / "misshaped.safetensors"
    save_file({**encoder_tensors, name: torch.zeros(512, 512, 3)}, str(path))
    with pytest.raises(MimiCheckpointError, match=r"downsample\.conv\.conv\.conv\.weight.*\(512, 512, 3\)"):
        MimiEncoder.from_safetensors(path)


def test_unreadable_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(MimiCheckpointError, match="junk.safetensors"):
        MimiEncoder.from_safetensors(path)


def test_moshi_state_dict_attention_names_are_accepted(tmp_path, encoder_tensors, encoder):
    # The release names attention weights in_proj_weight / out_proj.weight; moshi's own state_dict
    # says in_projs.0.weight / out_projs.0.weight. A file saved from moshi must load too.
    renamed = {k.replace(".in_proj_weight", ".in_projs.0.weight").replace(".out_proj.", ".out_projs.0."): v
               for k, v in encoder_tensors.items()}
    assert renamed.keys() != encoder_tensors.keys()
    path = tmp_path / "moshi_names.safetensors"
    save_file(renamed, str(path))
    loaded = MimiEncoder.from_safetensors(path).state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in encoder.state_dict().items())


def test_encode_step_rejects_wrong_frame_shape(encoder):
    state = encoder.init_state(2)
    with pytest.raises(ValueError, match="1920"):
        encoder.encode_step(torch.zeros(2, 960), state)
    with pytest.raises(ValueError):
        encoder.encode_step(torch.zeros(1, FRAME_SIZE), state)


def test_state_prints_a_summary(encoder):
    state = encoder.init_state(2)
    encoder.encode_step(torch.zeros(2, FRAME_SIZE), state)
    text = repr(state)
    assert "batch=2" in text and "frames=[1, 1]" in text and "filled=[2, 2]" in text
    assert len(text) < 600
