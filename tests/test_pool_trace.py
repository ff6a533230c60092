"""The batching figure's data (lab.pool_trace): what a StreamPool's slots and KV rings really hold while
users join, pause and leave, recorded from the real pool."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from lab import pool_trace  # noqa: E402
from lab.widgets import latency_figures  # noqa: E402

CONTEXT = 8


def test_slots_step_write_their_ring_and_reset_alone(tiny_model):
    frames = pool_trace.record_pool(tiny_model, slots=3, context=CONTEXT, ticks=18)
    assert tiny_model.cfg.context == 16  # the model itself keeps its context: a copy was shortened
    by = {f.tick: f for f in frames}
    written: dict[int, list[int]] = {}
    for f in frames:
        for s in range(3):
            if f.active[s]:
                p = f.next_pos[s] - 1
                assert f.ring[s, p % CONTEXT] == p  # step p lands in ring slot p mod context
                written.setdefault(s, []).append(p)
            elif f.tick > 0 and f.users[s] is not None and f.users[s] == by[f.tick - 1].users[s]:
                # an idle slot is left exactly as it was
                assert f.next_pos[s] == by[f.tick - 1].next_pos[s]
                assert (f.ring[s] == by[f.tick - 1].ring[s]).all()
    assert by[6].active == [True, False, True] and by[7].active == [True, False, True]  # bob sent nothing
    assert by[8].ring[0, 0] == 8 and by[7].ring[0, 0] == 0  # ann's ring wrapped: step 8 overwrote step 0
    assert (by[9].ring[0] == -1).all() and by[9].next_pos[0] == 0 and by[9].users[0] is None  # ann left
    assert by[11].users[0] == "dan" and by[11].next_pos[0] == 1 and by[11].ring[0, 0] == 0  # dan from 0
    # dan's reset touched only his slot: bob's ring went on from where it was
    assert (by[11].ring[1] != -1).sum() == min(CONTEXT, by[11].next_pos[1])
    assert written[1] == list(range(len(written[1])))  # bob's positions never skip, idle ticks included


def test_pool_figure_draws_every_tick_and_the_rings(tiny_model):
    frames = pool_trace.record_pool(tiny_model, slots=3, context=CONTEXT, ticks=18)
    fig = latency_figures.pool_figure(frames, snapshots=(6, 12, 17))
    top, *rings = fig.axes
    idle = sum(1 for f in frames for s in range(3) if f.users[s] is not None and not f.active[s])
    assert idle == 2 and sum(t.get_text() == "idle" for t in top.texts) == idle
    assert [a.get_title() for a in rings] == ["KV ring after tick 6", "KV ring after tick 12", "KV ring after tick 17"]
    shown = sorted(int(t.get_text()) for t in rings[2].texts if t.get_text())
    assert shown == sorted(int(v) for v in frames[17].ring.ravel() if v >= 0)
    assert np.isclose(top.get_xlim()[1], len(frames))
