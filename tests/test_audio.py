"""Audio in: the streaming resampler's accuracy, chunking invariance and anti-aliasing; checks and downmixing."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from lab.audio import StreamingResampler, check_sample_rate, load_audio, resample, to_mono_float

OUT = 24_000


def stream_through(rate_in, x, chunk_seed=None, max_chunk=5000):
    r = StreamingResampler(rate_in, OUT)
    if chunk_seed is None:
        parts = [r.push(x)]
    else:
        rng, parts, i = np.random.default_rng(chunk_seed), [], 0
        while i < len(x):
            n = int(rng.integers(1, max_chunk + 1))
            parts.append(r.push(x[i:i + n]))
            i += n
    return np.concatenate(parts + [r.drain()])


def rms_db(x):
    """Level relative to a full-scale sine."""
    return 20 * np.log10(np.sqrt(np.mean(x ** 2)) / np.sqrt(0.5))


@pytest.mark.parametrize("rate_in", [48_000, 44_100, 16_000, 8_000, 22_050, 96_000])
def test_sine_is_resampled_accurately_and_aligned(rate_in):
    """Output sample n is the input at time n / 24000: a 440 Hz sine matches the ideal sine, no group delay."""
    x = np.sin(2 * np.pi * 440 * np.arange(rate_in) / rate_in)  # 1 s
    y = stream_through(rate_in, x)
    assert len(y) >= OUT
    ideal = np.sin(2 * np.pi * 440 * np.arange(OUT) / OUT)
    edge = OUT // 20  # 50 ms at each end, where the signal starts and stops abruptly
    np.testing.assert_allclose(y[edge:OUT - edge], ideal[edge:OUT - edge], atol=1e-2)
    # As good as scipy's polyphase resampler (which compensates its delay the same way).
    g = np.gcd(rate_in, OUT)
    reference = resample_poly(x, OUT // g, rate_in // g)
    np.testing.assert_allclose(y[edge:OUT - edge], reference[edge:OUT - edge], atol=1e-2)
    assert np.abs(resample(x, rate_in) - y[:OUT]).max() == 0  # the whole-signal helper is the same filter
    assert len(resample(x, rate_in)) == OUT


@pytest.mark.parametrize("rate_in", [48_000, 44_100, 16_000, 8_000])
def test_chunking_does_not_change_a_single_bit(rate_in):
    x = np.random.default_rng(0).standard_normal(rate_in // 2)
    whole = stream_through(rate_in, x)
    for seed in range(3):
        assert np.array_equal(stream_through(rate_in, x, chunk_seed=seed), whole)
    short = x[: rate_in // 20]
    assert np.array_equal(stream_through(rate_in, short, chunk_seed=9, max_chunk=3), stream_through(rate_in, short))


def test_aliasing_is_suppressed():
    rate_in = 48_000
    t = np.arange(rate_in) / rate_in
    edge = OUT // 10
    tone_20k = stream_through(rate_in, np.sin(2 * np.pi * 20_000 * t))  # above 12 kHz: would alias to 4 kHz
    assert rms_db(tone_20k[edge:OUT - edge]) < -40
    tone_4k = stream_through(rate_in, np.sin(2 * np.pi * 4_000 * t))  # the pass band is kept
    assert abs(rms_db(tone_4k[edge:OUT - edge])) < 0.1
    tone_7k = stream_through(44_100, np.sin(2 * np.pi * 7_000 * np.arange(44_100) / 44_100))
    assert abs(rms_db(tone_7k[edge:OUT - edge])) < 0.1


@pytest.mark.parametrize("rate_in", [16_000, 44_100, 48_000])
@pytest.mark.parametrize("frequency", [220.0, 1000.0, 3150.0])
def test_a_sine_keeps_its_frequency(rate_in, frequency):
    """The spectrum's peak stays where it was: a resampler that took 44.1 kHz for 48 kHz would move it 8 %."""
    x = np.sin(2 * np.pi * frequency * np.arange(rate_in) / rate_in)
    y = stream_through(rate_in, x, chunk_seed=4)[:OUT]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=8 * len(y)))
    peak_hz = np.argmax(spectrum) * OUT / (8 * len(y))
    assert abs(peak_hz - frequency) < 0.5


@pytest.mark.parametrize("bad", [0, -16_000, 22_050.5, 384_001])
def test_a_bad_sample_rate_is_named(bad):
    with pytest.raises(ValueError, match=rf"StreamingResampler rate_in must be a whole number of Hz .*got {bad}"):
        StreamingResampler(bad)
    with pytest.raises(ValueError, match=rf"StreamingResampler rate_out must be a whole number of Hz .*got {bad}"):
        StreamingResampler(48_000, bad)
    with pytest.raises(TypeError, match="StreamingResampler rate_in must be a number of Hz, got str"):
        StreamingResampler("48000")


@pytest.mark.parametrize("rate_in", [44_100, 24_000])
def test_a_bad_chunk_leaves_the_stream_as_it_was(rate_in):
    """A chunk with NaN, or of the wrong shape, raises and is not consumed: the stream then goes on exactly
    as if it had never come (NaN kept in the filter's history would spoil every later sample)."""
    x = np.random.default_rng(5).standard_normal(rate_in // 2)
    clean = stream_through(rate_in, x)
    r = StreamingResampler(rate_in, OUT)
    first = r.push(x[:7000])
    before = repr(r)
    bad_chunks = [np.array([0.1, np.nan, 0.2]), np.array([np.inf]), np.ones((100, 2)), np.array(["a", "b"])]
    for bad in bad_chunks:
        with pytest.raises(ValueError, match="NaN or Inf|expected a 1-D array of samples"):
            r.push(bad)
        assert repr(r) == before
    rest = np.concatenate([first, r.push(x[7000:]), r.drain()])
    assert np.array_equal(rest, clean)


def test_passthrough_at_24k():
    x = np.random.default_rng(1).standard_normal(1000)
    r = StreamingResampler(24_000)
    assert np.array_equal(r.push(x), x) and len(r.drain()) == 0


def test_check_sample_rate():
    assert check_sample_rate(48_000) == 48_000 and check_sample_rate(np.int64(16_000)) == 16_000
    assert check_sample_rate(44_100.0) == 44_100
    for bad in (0, -1, 384_001, 1e9, 22_050.5):
        with pytest.raises(ValueError, match=r"sample_rate must be a whole number of Hz in \(0, 384000\]"):
            check_sample_rate(bad)
    for bad in ("48000", None, True):
        with pytest.raises(TypeError, match="sample_rate must be a number"):
            check_sample_rate(bad)


def test_to_mono_float():
    pcm = np.array([[32767, -32768], [0, 16384]], dtype=np.int16)  # (T, 2)
    np.testing.assert_allclose(to_mono_float(pcm), [(32767 - 32768) / 65536, 16384 / 65536])
    stereo = np.random.default_rng(2).standard_normal((100, 2)).astype(np.float32)
    np.testing.assert_array_equal(to_mono_float(stereo), stereo.astype(np.float64).mean(1))
    np.testing.assert_array_equal(to_mono_float(stereo.T), to_mono_float(stereo))  # (C, T)
    assert to_mono_float(np.zeros(0, np.float32)).shape == (0,)
    with pytest.raises(ValueError, match="2 of 3 samples are NaN or Inf"):
        to_mono_float(np.array([np.nan, 0.0, np.inf]), what="chunk")
    with pytest.raises(TypeError, match="dtype uint8"):
        to_mono_float(np.zeros(3, np.uint8))


def test_load_audio(tmp_path):
    stereo = np.random.default_rng(3).uniform(-0.5, 0.5, (4410, 2))
    sf.write(tmp_path / "stereo.wav", stereo, 44_100, subtype="FLOAT")
    audio, rate = load_audio(tmp_path / "stereo.wav")
    assert rate == 44_100
    np.testing.assert_allclose(audio, stereo.mean(1), atol=1e-7)
    (tmp_path / "junk.wav").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="cannot decode audio file .*junk.wav"):
        load_audio(tmp_path / "junk.wav")
    with pytest.raises(FileNotFoundError, match="nope.flac"):
        load_audio(tmp_path / "nope.flac")
