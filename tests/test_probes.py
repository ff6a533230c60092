"""Failure probes: the kinds synthesise as intended, the judging is right where the answer is known, and
`dsm-lab probes --json` prints the documented keys."""

from __future__ import annotations

import json

import pytest

from lab import turns
from lab.cli import main
from lab.probes import KEYS, PROBES, probe_turns, run_probes


def test_at_least_eight_kinds_and_every_text_speaks():
    assert len(PROBES) >= 8
    for kind, texts in PROBES.items():
        name, audio, meta = next(probe_turns(kind, 1, voices=("en-us+m3",)))
        assert name == f"{kind}-000" and len(audio) > 0
        for text in texts:
            n_pauses = text.count("|")
            assert all(w.isalpha() for w in text.replace("|", " ").replace(".", " ").replace("?", " ").split())
            assert (n_pauses > 0) == (kind not in ("questions", "statements", "short_answers")), text


def test_probe_turns_have_the_pauses_they_announce():
    turns_ = list(probe_turns("long_pauses", 4, voices=("en-us+m3",)))
    for _, _, meta in turns_:
        mid = [p for p in meta["pauses"] if p["kind"] == "mid_turn"]
        assert len(mid) == 1 and 1.0 <= mid[0]["end"] - mid[0]["start"] <= 2.0 + 1e-6
    _, _, short = next(probe_turns("short_answers", 1, voices=("en-us+m3",)))
    assert [p["kind"] for p in short["pauses"]] == ["end_of_turn"]
    with pytest.raises(ValueError, match="unknown probe kind 'jokes'"):
        next(probe_turns("jokes", 1))


def test_a_silence_timer_cuts_every_long_pause_and_no_short_answer(tiny_model):
    """Known answers: a 0.5 s timer fires inside every 1-2 s mid-turn pause, never inside a one-word turn."""
    table, records = run_probes(tiny_model, n=3, kinds=["long_pauses", "short_answers"],
                                policies=[turns.SilencePolicy(0.5)], voices=("en-us+m3", "festival:slt"))
    assert list(table.columns) == list(KEYS)
    rows = table.set_index("probe")
    assert rows.loc["long_pauses", "early_cut_rate"] == 1.0
    assert rows.loc["short_answers", "early_cut_rate"] == 0.0 and rows.loc["short_answers", "miss_rate"] == 0.0
    assert 0.5 <= rows.loc["short_answers", "latency_p50_s"] < 0.7  # the timer's own wait, and a VAD frame
    assert (table["turns"] == 3).all() and len(records) == 6


def test_cli_prints_one_object_a_line_with_the_documented_keys(tiny_model_dir, capsys):
    assert main(["probes", "--n", "1", "--kind", "short_answers", "--kind", "numbers", "--json",
                 "--model", str(tiny_model_dir)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["probe"] for r in rows} == {"short_answers", "numbers"}
    policies = {r["policy"] for r in rows}
    assert {"p_eot_2s > 0.5", "silence >= 0.5 s (energy VAD)", "silero vad, 100 ms"} <= policies
    for r in rows:
        assert {"probe", "policy", "early_cut_rate", "latency_p50_s", "miss_rate", "turns"} <= set(r)
        assert r["turns"] == 1
