"""Batched streams as a server runs them (lab.batch.StreamPool): each user's tokens, words and end-of-turn
probabilities equal what the same audio gives alone, whatever the other slots do."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import speechlike

from lab.batch import PoolFull, StreamPool
from lab.events import Step, Word


def solo(model, audio, rate):
    s = model.stream()
    return s.feed(audio, rate) + s.flush()


def steps_of(events):
    return [(e.step, e.token, e.time_s) for e in events if isinstance(e, Step)]


def p_eot_of(events):
    return np.array([[e.p_eot[h] for h in sorted(e.p_eot)] for e in events if isinstance(e, Step)])


def words_of(events):
    return [(w.text, w.start_s, w.end_s, w.emitted_s) for w in events if isinstance(w, Word)]


def test_each_user_gets_their_solo_results(tiny_model):
    """Five users through a 4-slot pool: staggered joins, random chunk sizes, slots that idle at random,
    a slot left free while the others stream (until "d" joins), a user who leaves mid-run and a newcomer who
    takes the freed slot (a reset mid-run, next to slots still streaming)."""
    rate = 24_000
    audios = {u: speechlike(2.0 + 0.3 * k, rate, seed=30 + k) for k, u in enumerate("abcde")}
    expected = {u: solo(tiny_model, a, rate) for u, a in audios.items()}
    assert all(len(set(t for _, t, _ in steps_of(e))) >= 3 for e in expected.values()), "tokens should vary"

    pool = StreamPool(tiny_model, slots=4)
    joins = {"a": 0, "b": 3, "c": 7, "d": 30}  # call index at which each user joins; "e" replaces "b"
    got, slot_of, pos, done = {u: [] for u in audios}, {}, dict.fromkeys(audios, 0), set()
    rng = np.random.default_rng(0)
    for call in range(2000):
        for u, at in joins.items():
            if at == call:
                slot_of[u] = pool.join(u)
        if call == 20:  # "b" leaves halfway through its audio: flushed, slot freed, "e" gets it afresh
            got["b"] = got["b"] + pool.leave(slot_of["b"], flush=True)
            done.add("b")
            assert pool.free_slots == [slot_of["b"], 3]
            slot_of["e"] = pool.join("e")
            assert slot_of["e"] == slot_of["b"]
        chunks = {}
        for u, i in slot_of.items():
            if u in done or pos[u] >= len(audios[u]) or rng.random() < 0.3:
                continue  # nothing new from this user: the slot idles
            n = int(rng.integers(200, 5000))
            chunks[i] = audios[u][pos[u]:pos[u] + n]
            pos[u] += n
        for i, events in pool.feed(chunks, rate).items():
            u = next(u for u, j in slot_of.items() if j == i and u not in done)
            got[u] += events
        if all(pos[u] >= len(audios[u]) for u in slot_of if u not in done) and len(slot_of) == 5:
            break
    for u in slot_of:
        if u not in done:
            got[u] += pool.flush(slot_of[u])
    assert all(e.stream == slot_of[u] for u in got for e in got[u])

    cut = [e for e in solo(tiny_model, audios["b"][:pos["b"]], rate)]  # "b" streamed only what it sent
    for u, events in got.items():
        want = cut if u == "b" else expected[u]
        assert steps_of(events) == steps_of(want), u
        assert words_of(events) == words_of(want), u
        np.testing.assert_allclose(p_eot_of(events), p_eot_of(want), atol=1e-5)


def test_slots_join_and_leave(tiny_model):
    pool = StreamPool(tiny_model, slots=2)
    assert pool.free_slots == [0, 1] and pool.busy_slots == []
    a, b = pool.join("alice"), pool.join("bob")
    assert (a, b) == (0, 1) and "alice" in repr(pool)
    with pytest.raises(PoolFull):
        pool.join("carol")
    pool.leave(a)
    assert pool.free_slots == [0] and pool.users == [None, "bob"]
    with pytest.raises(ValueError, match="slot 0 is free"):
        pool.feed({0: np.zeros(100)})
    with pytest.raises(IndexError):
        pool.flush(5)
    assert pool.join("carol") == 0
    # An idle slot's state is untouched by its neighbour's steps.
    before = int(pool.streamer.state.cache.next_pos[1])
    out = pool.feed({0: speechlike(0.5, 24_000)})
    assert list(out) == [0] and len([e for e in out[0] if isinstance(e, Step)]) == 6
    assert int(pool.streamer.state.cache.next_pos[1]) == before


def test_pool_of_one_slot(tiny_model):
    audio = speechlike(1.5, 16_000, seed=40)
    pool = StreamPool(tiny_model, slots=1)
    i = pool.join()
    events = pool.feed({i: audio}, 16_000)[i] + pool.leave(i, flush=True)
    want = solo(tiny_model, audio, 16_000)
    assert steps_of(events) == steps_of(want) and words_of(events) == words_of(want)


def test_rows_outside_the_active_span_are_not_computed_unless_a_hook_listens(tiny_model):
    """Two users in the first two slots of an 8-slot pool: each step computes two rows (the others' caches
    stay as they were), and each user still gets their solo results; when only the second sends, one row.
    With a hook attached, every row is computed, so a recording sees the whole batch."""
    import lab

    rate = 24_000
    audios = [speechlike(1.5, rate, seed=70 + k) for k in range(2)]
    expected = [solo(tiny_model, a, rate) for a in audios]
    pool = StreamPool(tiny_model, slots=8)
    slots = [pool.join(u) for u in "ab"]
    cache = pool.streamer.state.cache
    idle_before = cache.keys[:, 2:].clone()
    computed = []
    handle = tiny_model.blocks[0].hook_in
    events = {i: [] for i in slots}
    for k in range(0, len(audios[0]), 1920):
        out = pool.feed({i: audios[i][k:k + 1920] for i in slots}, rate)
        computed.append(int(tiny_model.step_active.shape[0]))
        for i in slots:
            events[i] += out[i]
    for i in slots:
        events[i] += pool.flush(i)
        assert steps_of(events[i]) == steps_of(expected[i])
        assert words_of(events[i]) == words_of(expected[i])
        np.testing.assert_allclose(p_eot_of(events[i]), p_eot_of(expected[i]), atol=1e-5)
    assert set(computed) == {2}
    assert torch_equal(cache.keys[:, 2:], idle_before) and (cache.next_pos[2:] == 0).all()
    # Only the second user sends: one row, the first user's row untouched.
    first_before, first_pos = cache.keys[:, :1].clone(), int(cache.next_pos[0])
    pool.feed({slots[1]: audios[1][:1920]}, rate)
    assert tiny_model.step_active.shape[0] == 1
    assert torch_equal(cache.keys[:, :1], first_before) and int(cache.next_pos[0]) == first_pos
    with lab.record(tiny_model, handle.name) as rec:
        pool.feed({slots[0]: audios[0][:1920]}, rate)
        seen = rec[handle.name]
    assert seen.shape[1] == 8


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
