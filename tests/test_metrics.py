"""lab.metrics: the word error rate against values counted by hand, and the word matching that the latency
measures share with it."""

from __future__ import annotations

import numpy as np
import pytest

from lab import metrics
from lab.events import Word


@pytest.mark.parametrize("ref, hyp, expected", [
    ("the cat sat", "the cat sat", 0.0),
    ("the cat sat on the mat", "the cat sit on mat", 2 / 6),  # one substitution, one deletion
    ("set a timer", "set a new timer", 1 / 3),  # one insertion
    ("set a timer", "", 1.0),  # nothing heard: every word deleted
    ("Hello, World!", "hello world", 0.0),  # case and punctuation do not count
    ("don't stop", "dont stop", 1 / 2),  # the apostrophe is part of the word
    ("a b", "c d e f", 4 / 2),  # insertions can push it above 1
])
def test_wer_known_values(ref, hyp, expected):
    assert metrics.wer(ref, hyp) == pytest.approx(expected)


def test_wer_is_over_the_corpus_not_a_mean_of_items():
    # 0 errors in 4 words, then 2 in 2 (a substitution and a deletion): 2 / 6, not the mean (0 + 1) / 2.
    assert metrics.wer(["a b c d", "e f"], ["a b c d", "x"]) == pytest.approx(1 / 3)
    # An empty reference has no words to get wrong: it is left out (its insertions are not counted).
    assert metrics.wer(["", "a b"], ["noise", "a b"]) == 0.0


def test_wer_refuses_what_it_cannot_score():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        metrics.wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="every reference is empty"):
        metrics.wer(["", "  ,"], ["a", "b"])


def test_match_words_pairs_the_words_the_wer_counts_correct():
    ref = ["Set", "a", "timer", "for", "five", "minutes."]
    hyp = ["set", "the", "timer", "five", "minutes", "please"]
    assert metrics.match_words(ref, hyp) == [(0, 0), (2, 2), (4, 3), (5, 4)]
    # 6 reference words, 4 matched: a substitution ("a" -> "the"), a deletion ("for"), an insertion ("please").
    assert metrics.wer(" ".join(ref), " ".join(hyp)) == pytest.approx(3 / 6)
    assert metrics.match_words(["e-mail", ",", "me"], ["e-mail", ",", "me"]) == [(0, 0), (2, 2)]
    assert metrics.match_words([], ["a"]) == [] and metrics.match_words(["a"], []) == []


def test_emission_latency_of_matched_words():
    ref = [{"text": "call", "start": 0.1, "end": 0.4}, {"text": "mom", "start": 0.5, "end": 0.8}]
    hyp = [Word("call", 0.08, 0.4, 0.96), Word("tom", 0.48, 0.8, 1.36)]
    assert metrics.emission_latencies(ref, hyp).tolist() == pytest.approx([0.56])


def test_question_mark_f1_and_capitals_over_the_alignment():
    ref = ["What", "time", "is", "it?", "Call", "Tom."]
    # "it?" right, a "?" on a wrong word (a miss and a false alarm), "tom" in the wrong case.
    hyp = ["What", "time", "is", "it?", "Fall?", "tom."]
    c = metrics.punctuation_counts(ref, hyp)
    assert (c["q_tp"], c["q_fp"], c["q_fn"]) == (1, 1, 0)
    assert c["matched"] == 5 and c["same_case"] == 4
    assert metrics.question_f1(c) == 2 / 3
    # No "?" anywhere: F1 is undefined, not 1 or 0.
    assert np.isnan(metrics.question_f1(metrics.punctuation_counts(["Hello."], ["Hello."])))
    # A question written as a statement is a miss.
    c = metrics.punctuation_counts(["Is", "it", "on?"], ["Is", "it", "on."])
    assert (c["q_tp"], c["q_fn"]) == (0, 1) and metrics.question_f1(c) == 0.0


def test_question_marks_per_sentence_forgive_a_misheard_last_word():
    ref = ["What", "is", "ten", "plus", "thirty", "four?", "Call", "Tom."]
    hyp = ["What", "is", "ten", "plus", "thirty?", "Call", "tom."]  # cut short: still a question
    assert metrics.sentence_marks(hyp) == ["?", "."]
    word = metrics.punctuation_counts(ref, hyp)
    assert (word["q_tp"], word["q_fp"], word["q_fn"]) == (0, 1, 1)
    sent = metrics.sentence_question_counts(ref, hyp)
    assert sent == {"sq_tp": 1, "sq_fp": 0, "sq_fn": 0} and metrics.question_f1(sent) == 1.0
    # A question written as a statement, a statement written as a question, and a transcript with no end.
    assert metrics.sentence_question_counts(["Is", "it", "on?"], ["Is", "it", "on."]) == {"sq_tp": 0, "sq_fp": 0,
                                                                                       "sq_fn": 1}
    assert metrics.sentence_question_counts(["Stop."], ["Stop?"]) == {"sq_tp": 0, "sq_fp": 1, "sq_fn": 0}
    assert metrics.sentence_question_counts(["Is", "it?"], ["Is", "it"]) == {"sq_tp": 0, "sq_fp": 0, "sq_fn": 1}
    # One sentence too many in the hypothesis: the alignment keeps the question matched.
    assert metrics.sentence_question_counts(["Is", "it?", "Go."], ["Is.", "it?", "Go."])["sq_tp"] == 1
