"""Kyutai's roundings of one delay, read from its code: the spread the course shows."""

from __future__ import annotations

from lab.delays import delay_roundings


def frames(seconds):
    return {r["where"]: r["frames"] for r in delay_roundings(seconds)}


def test_the_1b_delay_is_6_7_or_8_frames_depending_on_where():
    f = frames(0.5)
    assert f["exact"] == 6.25
    assert (f["moshi-server word times"], f["scripts: silence padded after the audio"], f["Unmute: flush"]) == (6, 7, 8)
    assert f["lab: DSMConfig.delay_frames (flush)"] == 7


def test_the_2_6b_delay_is_31_25_frames_rounded_to_32():
    f = frames(2.5)
    assert f["exact"] == 31.25 and f["moshi-server word times"] == 32
    assert f["scripts: silence padded after the audio"] == 32 and f["Unmute: flush"] == 33


def test_a_delay_on_the_grid_is_not_rounded_and_has_no_server_constant():
    f = frames(0.48)  # the embedded model's 6 frames
    assert f["exact"] == 6 and f["scripts: silence padded after the audio"] == 6 and f["Unmute: flush"] == 7
    assert f["moshi-server word times"] is None
