"""Word times follow Kyutai's server, and the two frame alignments write the same tokens one step apart.

`server_words` ports the word logic of moshi-server's ASR loop (moshi-core asr.rs, `State::step_tokens`):
a PAD or EPAD after pieces delivers a `Word` starting at the last EPAD's time; an EPAD dates itself
(step_idx - asr_delay_in_tokens) / 12.5, with step_idx counting steps from 1, and gives the last delivered
word its `EndWord`. Steps before the delay are ignored.
"""

from __future__ import annotations

import pytest

import lab
from lab.audio import load_audio
from lab.config import FRAME_RATE
from lab.resources import samples_root

PAD, EPAD = 3, 0


def server_words(tokenizer, tokens, delay_frames):
    """[(text, start_time, stop_time or None)] as moshi-server's Word and EndWord messages give them."""
    words, pieces, unended, last_stop = [], [], False, 0.0
    for k, token in enumerate(tokens):
        step_idx = k + 1
        if step_idx < delay_frames:
            continue
        if token in (PAD, EPAD):
            if pieces:
                words.append([tokenizer.decode(pieces).strip(), last_stop, None])
                pieces, unended = [], True
        else:
            pieces.append(token)
        if token == EPAD:
            stop = round((step_idx - delay_frames) / FRAME_RATE, 4)
            if unended:
                words[-1][2], unended = stop, False
            last_stop = stop
    return [tuple(w) for w in words]


@pytest.fixture(scope="module")
def runs():
    """The embedded model on every sample clip, in both alignments."""
    training, scripts = lab.load("dsm-tiny-en"), lab.load("dsm-tiny-en", alignment="scripts")
    out = {}
    for wav in sorted(samples_root().glob("*.wav")):
        audio = load_audio(wav)
        out[wav.stem] = training, training.transcribe(audio), scripts.transcribe(audio)
    return out


def test_word_times_equal_the_servers_on_the_same_tokens(runs):
    n = 0
    for name, (model, t, _) in runs.items():
        assert model.cfg.silence_prefix_s == 0  # the server's dating has no prefix to subtract
        want = server_words(model.tokenizer, t.steps["token"].tolist(), model.cfg.delay_frames)
        assert [(w.text, w.start_s, w.end_s) for w in t.words] == want, name
        n += sum(end is not None for _, _, end in want)
    assert n >= 15  # most words got an end from an EPAD: the comparison is about ends too


def test_the_two_alignments_write_the_same_tokens_one_step_apart(runs):
    """"scripts" (step t sees frame t) is the training input of step t + 1: the same tokens one step
    earlier, frame 0 never heard. Dated with one frame less of delay, its words land on the same times."""
    for name, (_, t, s) in runs.items():
        trained, scripted = t.steps["token"].tolist(), s.steps["token"].tolist()
        assert trained[1:] == scripted[:len(trained) - 1], name
        assert [(w.text, w.start_s, w.end_s) for w in s.words] == [(w.text, w.start_s, w.end_s) for w in t.words]
        # Each word comes out one frame (80 ms) sooner in stream time: the training alignment's held-back frame.
        assert all(round(a.emitted_s - b.emitted_s, 4) == round(1 / FRAME_RATE, 4) for a, b in zip(t.words, s.words)
                   if a.emitted_s < t.steps["time_s"].iloc[-1])
