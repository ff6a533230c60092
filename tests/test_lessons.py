"""How DSM learns (lab.lessons, notebook 00): the tables say what lab.train does, and a tiny model learns."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from lab import lessons, train  # noqa: E402
from lab.config import FRAME_RATE  # noqa: E402
from lab.model import DSM  # noqa: E402
from lab.tokenizer import Tokenizer  # noqa: E402
from lab.widgets import lesson_figures  # noqa: E402

D = 6


@pytest.fixture
def tok(tokenizer_path):
    return Tokenizer(tokenizer_path)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_target_table_is_the_trainers_stream_with_an_epad_before_each_word(tok):
    words = [("what", 0.3, 0.5), ("is", 0.5, 0.65), ("the", 0.67, 0.78), ("weather", 0.78, 1.1)]
    table = lessons.target_table(words, tok, D, 40)
    target, placed = train.text_targets(words, tok, 40, D)
    assert list(table.token) == list(target)
    for (text, start, _), first in zip(words, placed):
        rows = table[table.word == text]
        pieces = tok.encode_word(text)
        assert list(rows.kind) == ["EPAD"] + ["piece"] * len(pieces)  # EPAD, then the word's pieces
        assert list(rows.token[1:]) == pieces and rows.step.iloc[0] == first - 1
        assert rows.pushed_by.iloc[0] == first - 1 - (int(start * FRAME_RATE) + D - 1)
    assert (table[table.word == ""].kind == "PAD").all()  # nothing else but PAD


def test_colliding_words_are_pushed_to_the_next_free_step(tok):
    words = lessons.collision_words()
    table = lessons.target_table(words, tok, D, 30)
    epads = table[table.kind == "EPAD"].drop_duplicates("word")
    assert list(epads.word) == ["set", "a", "timer"]
    wanted = [int(s * FRAME_RATE) + D - 1 for _, s, _ in words]
    assert list(epads.step)[0] == wanted[0] and all(np.diff(epads.step) > 0)
    assert epads.pushed_by.iloc[-1] > 0  # "timer" waits for "a" to be written
    assert list(epads.pushed_by) == [s - w for s, w in zip(epads.step, wanted)]


def test_teacher_forcing_feeds_the_previous_target_and_corrupts_a_share(tok):
    target, _ = train.text_targets([(w, 0.3 + 0.4 * i, 0.6 + 0.4 * i) for i, w in enumerate(["set", "a"] * 40)],
                                   tok, 500, D)
    table = lessons.forcing_table(target, tok, p=0.1, initial_id=tok.vocab_size)
    assert table["input (previous target)"].iloc[0] == "<start>"
    assert list(table["input (previous target)"][1:]) == list(table.target[:-1])
    changed = table[table.corrupted]
    assert (changed["input, corrupted"] != changed["input (previous target)"]).all()
    assert 0.05 < table.corrupted.mean() < 0.15
    was_pad = changed["input (previous target)"] == "PAD"  # PAD -> a piece, text -> PAD
    assert (changed[~was_pad]["input, corrupted"] == "PAD").all()
    assert (changed[was_pad]["input, corrupted"] != "PAD").all()


def test_loss_table_reproduces_the_trainers_loss_and_pad_weighs_less(tok):
    items = lessons.sample_items(tok)
    cfg = lessons.tiny_config(tok, batch_size=2)
    torch.manual_seed(0)
    model = DSM(cfg.model_config(tok.vocab_size))
    batch = train.Batches(items, tok, cfg, seed=0)()
    table = lessons.loss_table(model, batch, cfg)
    with torch.no_grad():
        text_loss, _, _ = train.losses(model, batch, cfg)
    assert lessons.weighted_loss(table) == pytest.approx(text_loss.item(), rel=1e-5)
    assert set(table.weight[table.kind == "PAD"]) == {cfg.pad_weight}
    assert set(table.weight[table.kind != "PAD"]) == {1.0}
    shares = lessons.loss_shares(table)
    assert shares.share_of_tokens["PAD"] > 0.5  # most of the stream is PAD ...
    assert shares.share_of_weight["PAD"] < shares.share_of_tokens["PAD"]  # ... and weighs less than its count


def test_sample_items_write_a_word_as_written_only_when_the_tokenizer_can(tok):
    import json

    from lab.resources import samples_root

    items = lessons.sample_items(tok)
    assert len(items) == 4
    unknown = tok.sp.unk_id()
    forms = {w["written"]: w["text"] for p in samples_root().glob("*.json") for w in json.loads(p.read_text())["words"]}
    for it in items:
        for word, _, _ in it.words:
            written = word in forms and unknown not in tok.encode_word(word)
            assert written or word in forms.values(), word  # the written form if writable, else as spoken
    # this tokenizer has no capitals: "What" falls back to the spoken "what"
    assert ("what", 0.3, 0.517) in items[0].words and not any(w == "What" for it in items for w, _, _ in it.words)


@pytest.mark.slow
def test_a_tiny_model_learns_and_its_words_are_kept_along_the_way(tok):
    items = lessons.sample_items(tok)
    run = lessons.train_tiny(items[:2], tok, seconds=120, max_steps=40, snapshots=(0, 20), held_out=items[2:3])
    log = run.log
    assert list(log.step) == list(range(1, 41))
    assert log.text_loss.tail(5).mean() < 0.7 * log.text_loss.head(5).mean()
    assert sorted(set(run.words.step)) == [0, 20, 40] and set(run.words.item) == {0, 1, 2}
    table = lessons.first_words(run, items[:2], items[2:3])
    assert list(table.index) == ["reference", "after 0 steps", "after 20 steps", "after 40 steps"]
    assert list(table.columns) == ["item 0", "item 1", "item 2 (not trained on)"]
    assert table.loc["reference", "item 0"] == " ".join(w for w, _, _ in items[0].words)
    assert not run.model.training


def test_lesson_figures_draw_the_stream_the_labels_and_the_curve(tok):
    words = lessons.collision_words()
    table = lessons.target_table(words, tok, D, 25)
    fig = lesson_figures.target_stream_figure(None, 24_000, words, table, D)
    ax = fig.axes[1]
    orange = [p for p in ax.patches if to_hex(p.get_facecolor()) == lesson_figures.KIND_COLORS["EPAD"]]
    assert len(orange) == (table.kind == "EPAD").sum() and len(ax.patches) == 25
    assert any(t.get_text().startswith("+") for t in ax.texts)  # the pushed word is marked
    labels = train.eot_targets(words, 25, (0.5, 2.0))
    fig = lesson_figures.eot_labels_figure(words, labels, (0.5, 2.0))
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), labels.T)
    log = lessons.pd.DataFrame({"step": [1, 2, 3], "elapsed_s": [0.1, 0.2, 0.3], "text_loss": [5.0, 3.0, 1.0],
                                "eot_loss": [0.7, 0.5, 0.2], "token_acc": [0.0, 0.4, 0.9]})
    fig = lesson_figures.loss_curve(log, snapshots=(0, 2, 50))
    ax = fig.axes[0]
    assert ax.get_title().startswith("A tiny model learning: 3 steps") and "(" in ax.get_ylabel()
    assert len([line for line in ax.get_lines() if line.get_linestyle() == ":"]) == 2  # 50 was never reached
