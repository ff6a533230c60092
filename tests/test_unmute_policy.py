"""UnmutePolicy against a port of Unmute's own turn-taking code, message by message, on recorded traces.

The port below keeps Unmute's structure (unmute/stt/exponential_moving_average.py, unmute/llm/chatbot.py,
unmute/stt/speech_to_text.py's message loop, unmute/unmute_handler.py's receive/determine_pause/flush):
a chat history whose last message decides the conversation state, an EMA updated by Step messages after 12
skipped ones, Word messages that open a new user message (forcing the EMA to 0), and per audio frame the
pause check, the flush, and the barge-in. lab.turns.unmute_decisions is a compact rewrite; they must agree.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lab
from lab import evaluate, turns
from lab.resources import samples_root

FRAME_TIME_SEC = 0.08


class PortEMA:
    def __init__(self, attack_time, release_time, initial_value):
        self.attack_time, self.release_time, self.value = attack_time, release_time, initial_value

    def update(self, dt, new_value):
        half = self.attack_time if new_value > self.value else self.release_time
        alpha = 1 - math.exp(-dt / half * math.log(2))
        self.value = (1 - alpha) * self.value + alpha * new_value


class PortChat:
    def __init__(self):
        self.history = [{"role": "system", "content": "instructions"}]

    def state(self):
        last = self.history[-1]
        if last["role"] == "assistant":
            return "bot_speaking"
        if last["role"] == "user":
            return "user_speaking" if last["content"].strip() else "waiting_for_user"
        return "waiting_for_user"

    def add(self, delta, role):
        """True when `delta` opens a new message."""
        if self.history[-1]["role"] != role:
            self.history.append({"role": role, "content": delta})
            return True
        before = self.history[-1]["content"]
        self.history[-1]["content"] += (" " if before and delta else "") + delta
        return before == ""


def unmute_port(times_s, probs, word_times_s, delay_sec=0.5):
    """Replays a trace as Unmute receives it: per step, the Step message, then that step's Word messages,
    then the handler's checks on the next audio frame."""
    ema, chat = PortEMA(0.01, 0.01, 1.0), PortChat()
    steps_to_wait, end_of_flush, decisions, barge_ins = 12, None, [], []
    words = sorted(word_times_s)
    for t, p in zip(times_s, probs):
        if steps_to_wait > 0:  # speech_to_text.py: the first steps' predictions are ignored
            steps_to_wait -= 1
        else:
            ema.update(FRAME_TIME_SEC, p)
        while words and words[0] <= t + 1e-9:
            words.pop(0)
            if chat.state() == "bot_speaking":  # STT-based interruption
                chat.add("<interrupted>", "assistant")
            if chat.add("word", "user"):
                ema.value = 0.0
        if end_of_flush is None:
            if chat.state() == "user_speaking" and ema.value > 0.6:  # determine_pause
                decisions.append(t)
                end_of_flush = t + delay_sec
            elif chat.state() == "bot_speaking" and ema.value < 0.4 and t > 3:
                barge_ins.append(t)
                chat.add("<interrupted>", "assistant")
                chat.add("", "user")
        elif t > end_of_flush + 1e-9:  # flush over: the bot answers
            end_of_flush = None
            chat.add("", "assistant")
    return decisions, barge_ins


def recorded_traces():
    """The embedded model on the sample clips, each with 3 s of quiet after it."""
    model = lab.load("dsm-tiny-en")
    items = evaluate.run_items(model, sorted(samples_root().glob("*.json")), tail_s=3.0)
    return [r.trace for r in items]


@pytest.fixture(scope="module")
def traces():
    return recorded_traces()


def test_unmute_policy_equals_the_port_on_recorded_traces(traces):
    fired = 0
    for tr in traces:
        want = unmute_port(tr.times_s, tr.head(2.0), tr.word_times_s)
        assert turns.unmute_decisions(tr.times_s, tr.head(2.0), tr.word_times_s) == want, tr.name
        assert turns.UnmutePolicy().decide(tr) == want[0]
        fired += len(want[0])
    assert fired >= len(traces)  # every clip ends a turn: the comparison is not between two empty lists


def test_unmute_policy_equals_the_port_on_shuffled_traces(traces):
    """The same on traces whose probabilities and words are moved about: bot turns, barge-ins, words during
    a flush, words in the warm-up."""
    rng = np.random.default_rng(0)
    kinds = set()
    for k in range(200):
        tr = traces[k % len(traces)]
        p = np.clip(tr.head(2.0)[rng.permutation(len(tr.times_s))] if k % 2 else rng.random(len(tr.times_s)), 0, 1)
        words = np.sort(rng.choice(tr.times_s, size=int(rng.integers(0, 12)), replace=False))
        want = unmute_port(tr.times_s, p, words)
        assert turns.unmute_decisions(tr.times_s, p, words) == want
        kinds |= {"decision"} if want[0] else set()
        kinds |= {"barge-in"} if want[1] else set()
    assert kinds == {"decision", "barge-in"}


def test_unmute_rearms_on_a_new_word_not_on_the_probability():
    t = np.round(0.08 * np.arange(1, 41), 4)
    p = np.r_[[0.1] * 14, [0.9] * 4, [0.1] * 4, [0.9] * 18]  # the head falls below 0.4 and rises again
    one_word = turns.Trace(t, {2.0: p}, word_times_s=np.array([0.4]))
    assert turns.UnmutePolicy().decide(one_word) == [t[14]]  # no second decision: no new word came
    assert turns.HysteresisPolicy(warmup_steps=12).decide(one_word) == [t[14], t[22]]  # ours re-arms below 0.4
    late_word = turns.Trace(t, {2.0: p}, word_times_s=np.array([0.4, t[25]]))
    assert turns.UnmutePolicy().decide(late_word) == [t[14], t[26]]  # the word forced 0 at step 25
    with pytest.raises(ValueError, match="word_times_s"):
        turns.UnmutePolicy().decide(turns.Trace(t, {2.0: p}))
