"""Streaming: PCM in at any rate, dtype, channel count and chunking -> the same tokens; errors that leave the
stream as it was; flush, reset, transcripts and constant memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_model, speechlike

from lab.events import EndOfTurn, Step, Word, WordEnd
from lab.model import FRAME_RATE, FRAME_SIZE
from lab.tokenizer import WordAssembler


def steps_of(events):
    return [(e.step, e.token) for e in events if isinstance(e, Step)]


def words_of(events):
    return [e for e in events if isinstance(e, Word)]


def expected_words(tok, tokens, delay_s):
    """(text, start_s) of each word the tokens of steps 0, 1, ... spell, worked out here independently of
    WordAssembler: a word is a "▁" piece (or a stray continuation after a non-text token) and the continuation
    pieces after it; it starts at the last EPAD since the previous word (else at its first piece's step - 1),
    an EPAD at step k dated (k + 1) / 12.5 - delay; one that decodes to nothing (a bare "▁" before PAD) is
    no word."""
    groups: list[tuple[int, list[int]]] = []
    current, epad = None, None
    for step, token in enumerate(tokens):
        if token == tok.epad_id:
            epad = step
        if not tok.is_text(token):
            current = None
        elif tok.starts_word(token) or current is None:
            current = (step - 1 if epad is None else epad, [token])
            groups.append(current)
            epad = None
        else:
            current[1].append(token)
    return [(tok.decode(pieces).strip(), round((first + 1) / FRAME_RATE - delay_s, 4)) for first, pieces in groups
            if tok.decode(pieces).strip()]


def run(model, audio, rate, chunk_seed=None, max_chunk=10_000):
    """Feed the audio in one piece (chunk_seed None) or in random chunks of 1..max_chunk samples, then flush."""
    s = model.stream()
    events = []
    if chunk_seed is None:
        events += s.feed(audio, rate)
    else:
        rng = np.random.default_rng(chunk_seed)
        i = 0
        while i < len(audio):
            n = int(rng.integers(1, max_chunk + 1))
            events += s.feed(audio[i:i + n], rate)
            i += n
    return events + s.flush()


def as_dtype(audio, dtype):
    if dtype == "int16":
        return np.round(audio * 32767).astype(np.int16)
    return audio.astype(dtype)


@pytest.mark.parametrize("rate", [24_000, 48_000, 16_000])
@pytest.mark.parametrize("dtype", ["int16", "float32", "float64"])
def test_tokens_do_not_depend_on_chunking(tiny_model, rate, dtype):
    audio = as_dtype(speechlike(3.0, rate, seed=1), dtype)
    reference = run(tiny_model, audio, rate)
    tokens = [t for _, t in steps_of(reference)]
    assert len(set(tokens)) >= 3, "the audio should move the model's tokens"
    assert len(tokens) >= 3.0 * FRAME_RATE + tiny_model.cfg.delay_frames + 1
    for seed in range(3):
        events = run(tiny_model, audio, rate, chunk_seed=seed)
        assert steps_of(events) == steps_of(reference)
        assert words_of(events) == words_of(reference)
    short = audio[: rate // 2]  # tiny chunks, down to single samples
    assert steps_of(run(tiny_model, short, rate, chunk_seed=7, max_chunk=5)) == steps_of(run(tiny_model, short, rate))


def test_int16_is_scaled_like_float(tiny_model):
    pcm = as_dtype(speechlike(2.0, 48_000, seed=2), "int16")
    assert steps_of(run(tiny_model, pcm, 48_000)) == \
        steps_of(run(tiny_model, pcm.astype(np.float64) / 32768.0, 48_000, chunk_seed=1))


def test_stereo_is_downmixed_to_mono(tiny_model):
    left, right = speechlike(2.0, 48_000, seed=3), speechlike(2.0, 48_000, seed=4)
    mono = steps_of(run(tiny_model, (left.astype(np.float64) + right) / 2, 48_000))
    stereo = np.stack([left, right], axis=1)  # (T, 2), as soundfile and sounddevice give it
    assert steps_of(run(tiny_model, stereo, 48_000, chunk_seed=0)) == mono
    assert steps_of(run(tiny_model, stereo.T.copy(), 48_000)) == mono  # (2, T) is understood too


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_bad_chunk_raises_and_is_not_consumed(tiny_model, bad_value):
    audio = speechlike(2.0, 48_000, seed=5)
    s = tiny_model.stream()
    events = s.feed(audio[:20_000], 48_000)
    bad = audio[20_000:27_000].copy()
    bad[123] = bad_value
    before = repr(s.state)
    with pytest.raises(ValueError, match="NaN or Inf"):
        s.feed(bad, 48_000)
    assert repr(s.state) == before
    events += s.feed(audio[20_000:], 48_000) + s.flush()
    clean = run(tiny_model, audio, 48_000)
    assert steps_of(events) == steps_of(clean)
    assert words_of(events) == words_of(clean)


def test_bad_chunk_in_a_batch_changes_no_slot(tiny_model):
    audio = speechlike(1.0, 24_000, seed=6)
    streams = tiny_model.streams(2)
    streams.feed([audio[:5000], audio[:3000]])
    before = repr(streams.state)
    bad = audio[5000:9000].copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="stream 1"):
        streams.feed([audio[5000:9000], bad])
    assert repr(streams.state) == before
    with pytest.raises(ValueError, match="expected 2 chunks"):
        streams.feed([audio])
    with pytest.raises(ValueError, match="batch of 2 streams: feed a list of 2 chunks"):
        streams.feed(audio)  # one array for two streams: which one?
    assert repr(streams.state) == before


def test_a_list_of_samples_is_one_chunk(tiny_model):
    audio = speechlike(1.0, 24_000, seed=6)
    assert steps_of(tiny_model.stream().feed(audio.tolist(), 24_000)) == \
        steps_of(tiny_model.stream().feed(audio, 24_000))
    assert tiny_model.stream().feed([], 24_000) == []
    batch_of_one = tiny_model.stream().feed([audio], 24_000)  # a list of chunks: events per stream
    assert len(batch_of_one) == 1 and steps_of(batch_of_one[0]) == steps_of(tiny_model.stream().feed(audio))


def test_empty_chunk_gives_no_events(tiny_model):
    s = tiny_model.stream()
    assert s.feed(np.zeros(0, dtype=np.float32), 48_000) == []
    assert s.feed(np.zeros((0, 2), dtype=np.int16), 48_000) == []
    assert s.state.resamplers[0] is None  # an empty chunk does not even fix the stream's rate
    assert len(s.feed(speechlike(0.5, 24_000), 24_000)) > 0


@pytest.mark.parametrize("rate", [0, -16_000, 384_001, 44_100.5])
def test_bad_sample_rate_is_refused(tiny_model, rate):
    s = tiny_model.stream()
    with pytest.raises(ValueError, match=r"sample_rate .* \(0, 384000\]"):
        s.feed(np.zeros(100, dtype=np.float32), rate)
    with pytest.raises(TypeError, match="sample_rate"):
        s.feed(np.zeros(100, dtype=np.float32), "48000")


def test_sample_rate_cannot_change_mid_stream(tiny_model):
    s = tiny_model.stream()
    s.feed(np.zeros(1000), 48_000)
    with pytest.raises(ValueError, match="48000 Hz .* 16000 Hz"):
        s.feed(np.zeros(1000), 16_000)
    s.reset()
    s.feed(np.zeros(1000), 16_000)  # after a reset it can


def test_bad_dtype_and_shape_are_refused(tiny_model):
    s = tiny_model.stream()
    with pytest.raises(TypeError, match="dtype uint8"):
        s.feed(np.zeros(100, dtype=np.uint8), 24_000)
    with pytest.raises(ValueError, match="shape"):
        s.feed(np.zeros((10, 2, 2)), 24_000)


def test_file_that_cannot_be_decoded_is_named(tiny_model, tmp_path):
    junk = tmp_path / "not-audio.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(ValueError, match="not-audio.wav"):
        tiny_model.transcribe(junk)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        tiny_model.transcribe(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="sample_rate"):
        tiny_model.transcribe(np.zeros(100))
    with pytest.raises(ValueError, match=r"cannot decode audio bytes \(16 bytes\)"):
        tiny_model.transcribe(junk.read_bytes())


def test_transcribe_the_bytes_of_a_file(tiny_model, tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "clip.flac", speechlike(1.5, 16_000, seed=8), 16_000)
    from_path, from_bytes = tiny_model.transcribe(tmp_path / "clip.flac"), \
        tiny_model.transcribe((tmp_path / "clip.flac").read_bytes())
    assert from_bytes.steps["token"].tolist() == from_path.steps["token"].tolist() and from_bytes.text == from_path.text


@pytest.mark.parametrize("partial", [0, 700])
def test_flush_drains_the_delay(tiny_model, partial):
    delay = tiny_model.cfg.delay_frames
    audio = speechlike(2.0, 24_000, seed=8)[: 20 * FRAME_SIZE + partial]
    s = tiny_model.stream()
    fed = steps_of(s.feed(audio))
    assert len(fed) == 20
    flushed = s.flush()
    extra = 1 if partial else 0  # a partial frame is completed with silence first
    assert [step for step, _ in steps_of(flushed)] == list(range(20, 20 + extra + delay + 1))
    assert s.state.words[0].partial == ""  # no word left half-assembled
    # Every word the tokens spell out has come out, the last one included.
    everything = run(tiny_model, audio, 24_000)
    steps = [e for e in everything if isinstance(e, Step)]
    assert [(w.text, w.start_s) for w in words_of(everything)] == \
        expected_words(tiny_model.tokenizer, [e.token for e in steps], delay * 0.08)
    if tiny_model.tokenizer.is_text(steps[-1].token):  # the last step wrote text: flush closed that word
        assert words_of(flushed)[-1].emitted_s == steps[-1].time_s


def test_word_assembly_and_timestamps(tiny_model):
    """Kyutai's server rule: start at the EPAD before the word, end at the next EPAD (a WordEnd, later)."""
    tok = tiny_model.tokenizer
    (set_id,) = tok.encode("set")
    bare, d = tok.sp.PieceToId("\u2581"), tok.sp.PieceToId("d")
    assert tok.piece(set_id) == "\u2581set" and tok.starts_word(bare) and tok.is_text(d) and not tok.starts_word(d)
    pad, epad = tok.pad_id, tok.epad_id
    #         0    1    2       3    4    5    6     7    8      9   10   11    12    13
    tokens = [epad, pad, set_id, pad, epad, bare, d, pad, pad, epad, d, set_id, set_id, pad]
    words = WordAssembler(tok, FRAME_RATE, delay_s=0.48, stream=3)
    out = [words.push(step, token, time_s=(step + 1) / FRAME_RATE) for step, token in enumerate(tokens)]
    got = [e for evs in out for e in evs] + [words.close(len(tokens), len(tokens) / FRAME_RATE)]

    def at(step):  # the date of an EPAD written at `step`
        return round((step + 1) / FRAME_RATE - 0.48, 4)

    assert got == [
        Word("set", at(0), None, 0.32, stream=3),  # starts at the EPAD of step 0 (a PAD between), closed by PAD
        WordEnd("set", at(0), at(4), 0.4, stream=3),  # ends at the next EPAD
        Word("d", at(4), None, 0.64, stream=3),  # "\u2581" + "d", closed by the PAD of step 7
        WordEnd("d", at(4), at(9), 0.8, stream=3),
        Word("d", at(9), None, 0.96, stream=3),  # a stray continuation starts a word
        WordEnd("d", at(9), at(10), 0.96, stream=3),  # the next word follows directly: this one ends there
        Word("set", at(10), None, 1.04, stream=3),  # no EPAD since the last word: starts at its step - 1
        WordEnd("set", at(10), at(11), 1.04, stream=3),
        Word("set", at(11), None, 1.12, stream=3),  # never ended: no EPAD came after it
        None,  # close() after the PAD of step 13: nothing left
    ]
    assert tok.piece(pad) == "" and tok.piece(epad) == "<epad>" and tok.piece(10_000) == "<10000>"


def test_reset_starts_afresh(tiny_model):
    audio = speechlike(2.0, 48_000, seed=9)
    s = tiny_model.stream()
    s.feed(speechlike(1.3, 16_000, seed=10), 16_000)
    s.reset()
    events = s.feed(audio, 48_000) + s.flush()
    fresh = run(tiny_model, audio, 48_000)
    assert steps_of(events) == steps_of(fresh) and words_of(events) == words_of(fresh)


def test_resetting_one_stream_of_a_batch(tiny_model):
    """Slots fed in different chunks and at different times equal their solo runs; a slot reset mid-run
    equals a fresh stream, and its neighbours do not notice."""
    audios = [speechlike(2.5, 24_000, seed=s) for s in (11, 12, 13)]
    solo = [run(tiny_model, a, 24_000) for a in audios]
    streams = tiny_model.streams(3)
    events: list[list] = [[], [], []]
    rng = np.random.default_rng(0)
    pos, limit = [0, 0, 0], [len(audios[0]), 25_000, len(audios[2])]
    while pos != limit:
        chunks = []
        for i in range(3):
            if pos[i] == limit[i] or rng.random() < 0.3:
                chunks.append(None)  # this slot has nothing new: it idles
                continue
            n = min(int(rng.integers(1, 4000)), limit[i] - pos[i])
            chunks.append(audios[i][pos[i]:pos[i] + n])
            pos[i] += n
        for i, evs in enumerate(streams.feed(chunks)):
            events[i] += evs
    streams.reset(1)
    events[1] = streams.feed([None, audios[1], None])[1]
    for i, evs in enumerate(streams.flush()):
        events[i] += evs
    for i in range(3):
        assert steps_of(events[i]) == steps_of(solo[i])
        assert [(w.text, w.start_s, w.end_s, w.emitted_s) for w in words_of(events[i])] == \
            [(w.text, w.start_s, w.end_s, w.emitted_s) for w in words_of(solo[i])]
        assert all(e.stream == i for e in events[i])


def test_transcript_steps_and_word_timestamps(tiny_model):
    audio = speechlike(3.0, 16_000, seed=14)
    t = tiny_model.transcribe((audio, 16_000))
    assert list(t.steps.columns) == ["step", "time_s", "token", "piece", "p_eot_0.5s", "p_eot_1s", "p_eot_2s",
                                     "p_eot_3s", "compute_ms"]
    assert t.steps["step"].tolist() == list(range(len(t.steps)))
    np.testing.assert_allclose(t.steps["time_s"], (t.steps["step"] + 1) / FRAME_RATE)
    assert ((t.steps.filter(like="p_eot") >= 0) & (t.steps.filter(like="p_eot") <= 1)).all().all()
    assert t.text == " ".join(w.text for w in t.words) and len(t.words) > 3

    # Each word starts at the EPAD before it and ends at the next EPAD (or the next word), known later.
    delay_s = tiny_model.cfg.delay_frames / FRAME_RATE
    assert [(w.text, w.start_s) for w in t.words] == \
        expected_words(tiny_model.tokenizer, t.steps["token"].tolist(), delay_s)
    tokens = t.steps["token"].tolist()
    for w, after in zip(t.words, t.words[1:] + [None]):
        if w.end_s is None:  # no EPAD and no word after it
            assert tiny_model.tokenizer.epad_id not in tokens[int(round((w.emitted_s) * FRAME_RATE)) - 1:]
            continue
        assert w.start_s < w.end_s and (after is None or w.end_s <= after.start_s + 1e-9)
    same = tiny_model.transcribe((np.round(audio * 32767).astype(np.int16), 16_000))
    assert len(same.steps) == len(t.steps)
    assert all(isinstance(e, EndOfTurn) for e in t.end_of_turns)


def test_silence_prefix_is_fed_by_every_stream(tokenizer_path):
    """A model with a silence prefix (Kyutai's 2.6B has 1 s) gets it from a live stream as from transcribe;
    times stay in the time of the audio fed."""
    plain = make_model(tokenizer_path)
    prefixed = make_model(tokenizer_path, silence_prefix_s=0.4)  # same weights, 5 frames of silence first
    audio = speechlike(2.0, 48_000, seed=15)
    by_hand = run(plain, np.concatenate([np.zeros(int(0.4 * 48_000)), audio]), 48_000)
    live = run(prefixed, audio, 48_000, chunk_seed=2)
    assert steps_of(live) == steps_of(by_hand)
    transcript = prefixed.transcribe((audio, 48_000))
    assert steps_of(live) == list(zip(transcript.steps["step"].tolist(), transcript.steps["token"].tolist()))
    assert [(w.text, w.start_s) for w in words_of(live)] == [(w.text, w.start_s) for w in transcript.words]
    shifted = [(w.text, round(w.start_s + 0.4, 4), round(w.emitted_s + 0.4, 4)) for w in words_of(live)]
    assert shifted == [(w.text, w.start_s, w.emitted_s) for w in words_of(by_hand)]
    first = next(e for e in live if isinstance(e, Step))
    assert first.time_s == pytest.approx(0.08 - 0.4)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_long_stream_runs_in_constant_memory(tiny_model):
    """Three minutes of audio in 80 ms chunks: the KV cache keeps its size and the process does not grow."""
    loop = speechlike(10.0, 24_000, seed=16)
    chunk = FRAME_SIZE
    s = tiny_model.stream()
    cache_bytes = s.state.cache.nbytes()
    rss_after_minute, steps = None, 0
    for minute in range(3):
        for start in range(0, 60 * 24_000, chunk):
            i = start % len(loop)
            steps += len(steps_of(s.feed(loop[i:i + chunk])))
        assert s.state.cache.nbytes() == cache_bytes
        if minute == 0:
            rss_after_minute = rss_bytes()
    growth = rss_bytes() - rss_after_minute
    assert steps == 3 * 60 * FRAME_RATE
    assert int(s.state.cache.next_pos[0]) == steps > 100 * tiny_model.cfg.context
    assert all(len(p) < FRAME_SIZE for p in s.state.pending)
    assert growth < 4 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB over two minutes of audio"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_streaming_on_cuda_matches_cpu(tiny_model_dir):
    """Every tensor a stream touches lives on the model's device: a batch with idle slots, a reset, a flush
    and a recording run on CUDA and give the CPU's tokens."""
    import lab

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cpu, gpu = lab.load(tiny_model_dir), lab.load(tiny_model_dir, device="cuda")
    audios = [speechlike(3.0, 48_000, seed=s) for s in (20, 21)]

    def batch_run(model):
        streams = model.streams(2)
        events = [[], []]
        for chunks in ([audios[0][:50_000], None], [None, audios[1]], [audios[0][50_000:], None]):
            for i, evs in enumerate(streams.feed(chunks, 48_000)):
                events[i] += evs
        for i, evs in enumerate(streams.flush()):
            events[i] += evs
        return events

    on_cpu, on_gpu = batch_run(cpu), batch_run(gpu)
    for i in range(2):
        a, b = np.array(steps_of(on_cpu[i])), np.array(steps_of(on_gpu[i]))
        assert a.shape == b.shape and (a == b).mean() > 0.95
    with lab.record(gpu, "blocks.*.attn.pattern", "eot") as rec:
        t = gpu.transcribe((audios[0], 48_000))
    np.testing.assert_allclose(rec.attention(1, 0).sum(1), 1.0, atol=1e-5)
    assert len(rec.to_frame()) == 3 * len(t.steps)
    assert (t.steps["compute_ms"] > 0).all()
