"""The other direction (lab.tts, lab.tts_train): the audio stream follows the text stream, the model chooses
when each word starts, the pieces of a word are forced from the script, and checkpoints are safetensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lab import tts
from lab.errors import CheckpointError
from lab.tokenizer import Tokenizer
from lab.tts_train import batch, grammar_sentences, losses, speak_sentence

TINY = dict(d_model=32, num_layers=1, num_heads=2, ffn_hidden=64, audio_delay=2)


@pytest.fixture
def tok(tokenizer_path):
    return Tokenizer(tokenizer_path)


def _item(tok, words, n_frames=12):
    rng = np.random.default_rng(0)
    return {"mel": rng.standard_normal((n_frames, tts.SUB * tts.N_MELS)).astype(np.float32), "words": words}


def test_the_audio_stream_follows_the_text_stream_by_the_audio_delay(tok):
    cfg = tts.TTSConfig(**TINY)
    item = _item(tok, [("set", 0.16, 0.40), ("timer", 0.64, 0.90)])  # frames 2 and 8
    text_in, audio_in, audio, text, mask = batch([item], tok, cfg, np.random.default_rng(0), noise=0.0,
                                                 frame_drop=0.0)
    D = cfg.audio_delay
    assert audio.shape == (1, 12 + D, cfg.frame_dim)
    # Step t outputs the audio of frame t - D; before that, silence.
    assert torch.allclose(audio[0, D:], torch.from_numpy(item["mel"]))
    silence = (tts_train_silence() - cfg.mel_mean) / cfg.mel_std
    assert torch.allclose(audio[0, :D], torch.full_like(audio[0, :D], silence))
    # The text leads: EPAD at the step before the word's frame, its first piece at that frame.
    set_ = tok.encode_word("set")
    assert len(set_) <= 5 and text[0, 1] == tok.epad_id and text[0, 2:2 + len(set_)].tolist() == set_
    assert text[0, 7] == tok.epad_id
    # Inputs are the targets one step late (teacher forcing), starting from the initial token / frame.
    assert text_in[0, 0] == cfg.text_vocab and torch.equal(text_in[0, 1:], text[0, :-1])
    assert torch.equal(audio_in[0, 1:], audio[0, :-1]) and (audio_in[0, 0] == 0).all()
    assert mask[0].sum() == 12 + D


def tts_train_silence():
    from lab.tts_train import SILENCE_LOG

    return SILENCE_LOG


def test_the_fed_back_audio_is_noisy_but_the_target_is_not(tok):
    cfg = tts.TTSConfig(**TINY)
    item = _item(tok, [("set", 0.16, 0.40)])
    _, audio_in, audio, _, _ = batch([item], tok, cfg, np.random.default_rng(0), noise=0.5, frame_drop=0.0)
    assert torch.allclose(audio[0, cfg.audio_delay:], torch.from_numpy(item["mel"]))
    diff = (audio_in[0, 1:] - audio[0, :-1]).std().item()
    assert 0.4 < diff < 0.6


def test_word_start_loss_ignores_the_steps_that_carry_pieces(tok):
    cfg = tts.TTSConfig(**TINY, text_vocab=tok.sp.get_piece_size())
    torch.manual_seed(0)
    model = tts.ToyTTS(cfg)
    item = _item(tok, [("set", 0.16, 0.40), ("timer", 0.64, 0.90)])
    tensors = batch([item], tok, cfg, np.random.default_rng(0), noise=0.0, frame_drop=0.0)
    with torch.no_grad():
        model.word_start.bias.fill_(0.0)
        model.word_start.weight.zero_()  # p(start) = 0.5 everywhere: the loss is log 2 on counted steps
        _, start = losses(model, *tensors)
    assert start.item() == pytest.approx(np.log(2), abs=1e-5)
    with torch.no_grad():
        text = tensors[3]
        pieces = (text != cfg.pad_id) & (text != cfg.epad_id)
        assert pieces.any()  # the steps excluded from the loss exist


def test_generation_forces_the_pieces_of_each_word_in_order_and_stops_after_the_last(tokenizer_path, tok):
    cfg = tts.TTSConfig(**TINY, text_vocab=tok.sp.get_piece_size())
    torch.manual_seed(0)
    model = tts.ToyTTS(cfg)
    model.tokenizer = tok
    with torch.no_grad():
        model.word_start.bias.fill_(10.0)  # always "start the next word now"
        model.word_start.weight.zero_()
    out = model.generate("set a timer")
    assert out["complete"]
    stream = out["text_stream"]
    spoken = []
    for i, t in enumerate(stream):
        if t == tok.epad_id:
            spoken.append(i + 1)
    assert spoken == out["word_start_steps"]
    pieces = [t for t in stream if t not in (tok.pad_id, tok.epad_id)]
    assert pieces == sum((tok.encode_word(w) for w in ["set", "a", "timer"]), [])
    # After the last piece: the audio delay plus the tail, then it stops.
    last_piece = max(i for i, t in enumerate(stream) if t not in (tok.pad_id, tok.epad_id))
    assert len(stream) == last_piece + 1 + cfg.audio_delay + 6
    assert out["frames"].shape == (len(stream) - cfg.audio_delay, cfg.frame_dim)
    with torch.no_grad():
        model.word_start.bias.fill_(-10.0)  # never starts a word: gives up after max_steps, incomplete
    assert not model.generate("set a timer", max_steps=20)["complete"]


def test_log_mel_and_griffin_lim_keep_a_tone_where_it_was():
    cfg = tts.TTSConfig()
    t = np.arange(24_000) / 24_000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frames = tts.log_mel(tone, cfg)
    assert frames.shape == (12, tts.SUB * tts.N_MELS)  # 1 s = 12.5 steps -> 12 whole steps
    back = tts.mel_to_audio(frames, cfg, n_iter=16)
    spectrum = np.abs(np.fft.rfft(back * np.hanning(len(back))))
    peak_hz = np.argmax(spectrum) * 24_000 / len(back)
    assert abs(peak_hz - 440) < 40  # mel bins near 440 Hz are ~30 Hz wide
    with pytest.raises(ValueError, match=r"mono audio.*shape \(2, 100\)"):
        tts.log_mel(np.zeros((2, 100), np.float32))


def test_save_and_load_round_trip_and_refuse_what_is_not_a_tts_model(tmp_path, tokenizer_path, tok):
    cfg = tts.TTSConfig(**TINY, text_vocab=tok.sp.get_piece_size())
    model = tts.ToyTTS(cfg)
    folder = tts.save(model, tmp_path / "m", tokenizer_path, dtype=torch.float32)
    again = tts.load(folder)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert again.cfg == cfg
    info = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**info, "format": "dsm-lab"}))
    with pytest.raises(CheckpointError, match="not a dsm-lab text-to-speech model"):
        tts.load(folder)
    with pytest.raises(CheckpointError, match="no text-to-speech model"):
        tts.load(tmp_path / "nothing")


def test_training_sentences_are_distinct_and_test_sentences_avoid_them():
    train = grammar_sentences(50, seed=0)
    keys = {" ".join(s.words) for s in train}
    assert len(keys) == 50
    test = grammar_sentences(20, seed=1, exclude=keys)
    assert not keys & {" ".join(s.words) for s in test}


def test_a_sentence_is_spoken_with_its_written_words_inside_the_audio():
    s = grammar_sentences(1, seed=3)[0]
    audio, words = speak_sentence(s, "en-us+m3")
    assert [w for w, _, _ in words] == s.written
    assert all(0 <= a < b <= len(audio) / 24_000 for _, a, b in words)
