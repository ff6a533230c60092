"""What trains the model (lab.train): the delayed text targets, the end-of-turn labels, the PAD weighting of
the loss, and resuming a run; each hand-computed on a two-word example."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from conftest import speechlike
from safetensors.torch import load_file

import lab
from lab.model import DSM
from lab.tokenizer import Tokenizer
from lab.train import TrainConfig, _load_train_state, _save_train_state, eot_targets, losses, text_targets, train

# Two words on the 12.5 Hz grid (80 ms steps): "set" starts in frame 3 (0.30 s), "timer" in frame 7 (0.60 s).
SET_TIMER = [("set", 0.30, 0.55), ("timer", 0.60, 0.95)]


@pytest.fixture
def tok(tokenizer_path):
    return Tokenizer(tokenizer_path)


def test_text_targets_put_epad_before_each_word_and_its_first_piece_d_frames_after_its_start(tok):
    set_, timer = tok.encode_word("set"), tok.encode_word("timer")
    assert 1 <= len(set_) <= 3 and len(timer) >= 1  # "set" ends before "timer" needs its EPAD (step 9)
    target, placed = text_targets(SET_TIMER, tok, n_steps=20, delay=3)
    expected = [tok.pad_id] * 20
    expected[5] = tok.epad_id  # frame 3 + D 3 - 1
    expected[6:6 + len(set_)] = set_  # first piece at frame 3 + D
    expected[9] = tok.epad_id  # frame 7 + 3 - 1
    expected[10:10 + len(timer)] = timer
    assert target.tolist() == expected
    assert placed == [6, 10]


def test_a_word_that_comes_too_soon_waits_for_the_next_free_step(tok):
    a, timer = tok.encode_word("a"), tok.encode_word("timer")
    assert len(a) == 1
    # "a" in frame 0: EPAD at 2, piece at 3. "timer" in frame 1 would want its EPAD at step 3: taken, so 4.
    target, placed = text_targets([("a", 0.0, 0.05), ("timer", 0.10, 0.40)], tok, n_steps=12, delay=3)
    assert target[:5].tolist() == [tok.pad_id, tok.pad_id, tok.epad_id, a[0], tok.epad_id]
    assert target[5:5 + len(timer)].tolist() == timer
    assert placed == [3, 5]


def test_words_that_do_not_fit_are_left_out_with_all_after_them(tok):
    target, placed = text_targets(SET_TIMER, tok, n_steps=10, delay=3)  # "timer" needs steps 9, 10, ...
    assert placed == [6]
    assert (target == tok.epad_id).sum() == 1 and (target[9:] == tok.pad_id).all()


def test_end_of_turn_labels_at_each_horizon():
    words = [("set", 1.00, 1.25), ("timer", 1.60, 1.95)]  # nobody speaks before 1 s or after 1.95 s
    labels = eot_targets(words, n_steps=30, horizons=(0.5, 1.0))
    # Step t has heard audio up to t x 0.08 s; 1 = someone speaks within [now, now + h].
    # h = 0.5: from 0.56 s (step 7, the first with now + 0.5 >= 1.00) to 1.92 s (step 24, the last <= 1.95);
    # the 0.35 s gap between the words is shorter than the horizon, so it stays 1.
    assert np.flatnonzero(labels[:, 0]).tolist() == list(range(7, 25))
    # h = 1.0: from step 0 (0 + 1.0 >= 1.00) to step 24.
    assert np.flatnonzero(labels[:, 1]).tolist() == list(range(0, 25))
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {0, 1}


def _tiny_train_config(tmp_path, **overrides) -> TrainConfig:
    base = dict(corpus=str(tmp_path / "corpus"), out=str(tmp_path / "run"), delay_frames=3, d_model=32,
                num_layers=1, num_heads=4, ffn_hidden=64, context=16, vocab_size=64, batch_size=2,
                warmup_steps=1, max_steps=3, minutes=30.0, ckpt_every_s=1e9, threads=1, name="tiny-train")
    return TrainConfig(**{**base, **overrides})


def test_losses_weight_pad_and_feed_the_text_one_step_late(tokenizer_path, tok, tmp_path):
    cfg = _tiny_train_config(tmp_path)
    torch.manual_seed(0)
    model = DSM(cfg.model_config(cfg.vocab_size))
    with torch.no_grad():
        model.text_linear.weight.mul_(20)  # spread the logits so that PAD and text losses differ
    n_steps = 16
    text = torch.from_numpy(text_targets(SET_TIMER, tok, n_steps, cfg.delay_frames)[0])[None]
    eot = torch.from_numpy(eot_targets(SET_TIMER, n_steps, cfg.eot_horizons_s))[None]
    frames = torch.from_numpy(speechlike(n_steps * 0.08)).view(1, n_steps, -1)
    # By hand: the input at step t is the target of step t - 1 (the initial token at step 0).
    text_in = torch.cat([torch.tensor([[model.cfg.initial_text_id]]), text[:, :-1]], 1)
    with torch.no_grad():
        logits, eot_logits = model(model.align_audio(model.frontend(frames), "training"), text_in)
        nll = -logits[0].log_softmax(-1).gather(1, text[0, :, None])[:, 0]
        is_pad = text[0] == tok.pad_id
        for w in (0.0, 0.3, 1.0):
            cfg_w = _tiny_train_config(tmp_path, pad_weight=w)
            text_loss, eot_loss, accuracy = losses(model, (frames, text, eot), cfg_w)
            weights = torch.where(is_pad, w, 1.0)
            assert text_loss.item() == pytest.approx(((weights * nll).sum() / weights.sum()).item(), rel=1e-5)
        assert text_loss.item() == pytest.approx(nll.mean().item(), rel=1e-5)  # weight 1: the plain mean
        assert eot_loss.item() == pytest.approx(F.cross_entropy(eot_logits.flatten(0, 2), eot.flatten()).item())
        hits = (logits[0].argmax(-1) == text[0]) & ~is_pad
        assert accuracy.item() == pytest.approx(hits.sum().item() / (~is_pad).sum().item())


def test_optimizer_state_survives_a_save_and_a_load(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(5, 4)).square().sum().backward()
        opt.step()
    _save_train_state(tmp_path, opt, step=2, elapsed=12.5, rng_state={})
    fresh = torch.optim.AdamW(net.parameters(), lr=0.1)
    assert _load_train_state(tmp_path, fresh) == {"step": 2, "elapsed_s": 12.5}
    saved, loaded = opt.state_dict()["state"], fresh.state_dict()["state"]
    assert saved.keys() == loaded.keys()
    for i in saved:
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(saved[i][k], loaded[i][k]), (i, k)


def _write_corpus(folder, n=4):
    folder.mkdir()
    for i in range(n):
        audio = speechlike(1.2, seed=i)
        sf.write(folder / f"item{i}.wav", (audio * 32767).astype(np.int16), 24_000, subtype="PCM_16")
        words = [{"text": t, "start": s + 0.1 * i, "end": e + 0.1 * i} for t, s, e in SET_TIMER]
        (folder / f"item{i}.json").write_text(json.dumps({"audio": f"item{i}.wav", "duration": 1.2, "words": words}))


def test_resume_continues_from_the_saved_step_with_the_saved_weights(tokenizer_path, tmp_path):
    _write_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    run.mkdir()
    (run / "tokenizer.model").write_bytes(tokenizer_path.read_bytes())  # skip training a tokenizer
    logs = []
    train(_tiny_train_config(tmp_path, max_steps=3), log=logs.append)
    after_3 = load_file(str(run / "model" / "model.safetensors"))
    assert json.loads((run / "train_state.json").read_text())["step"] == 3
    # Resumed with nothing left to do: the loaded weights are written back unchanged.
    logs.clear()
    train(_tiny_train_config(tmp_path, max_steps=3), resume=True, log=logs.append)
    assert logs[0] == "resumed at step 3 (0.0 min)" and logs[-1].startswith("done: 3 steps")
    again = load_file(str(run / "model" / "model.safetensors"))
    assert all(torch.equal(after_3[k], again[k]) for k in after_3)
    # Resumed with two steps to go: it runs those two, from the saved weights, and counts on from 3.
    train(_tiny_train_config(tmp_path, max_steps=5), resume=True, log=logs.append)
    assert json.loads((run / "train_state.json").read_text())["step"] == 5
    assert logs[-1].startswith("done: 5 steps")
    after_5 = load_file(str(run / "model" / "model.safetensors"))
    assert any(not torch.equal(after_3[k], after_5[k]) for k in after_3)
    info = json.loads((run / "model" / "config.json").read_text())
    assert info["training"]["steps"] == 5


def test_training_picks_up_items_written_while_it_runs(tokenizer_path, tmp_path):
    """`reload_every_s`: a corpus still being written by `dsm-lab synth` grows under the trainer."""
    _write_corpus(tmp_path / "corpus", n=2)
    run = tmp_path / "run"
    run.mkdir()
    (run / "tokenizer.model").write_bytes(tokenizer_path.read_bytes())
    late = tmp_path / "late"
    _write_corpus(late, n=4)
    logs = []

    def log(message):
        logs.append(message)
        if message.startswith("2 items"):  # training has started: the synthesiser writes two more items
            for p in sorted(late.glob("item[23].*")):
                (tmp_path / "corpus" / p.name).write_bytes(p.read_bytes())

    train(_tiny_train_config(tmp_path, max_steps=3, reload_every_s=1e-9), log=log)
    assert logs[0].startswith("2 items") and "step 1: the corpus grew to 4 items" in logs
    logs.clear()
    train(_tiny_train_config(tmp_path, max_steps=3, reload_every_s=0.0, out=str(tmp_path / "run2")), log=logs.append)
    assert not any("grew" in m for m in logs)


def test_a_second_stage_starts_from_the_first_stages_model_and_counts_both(tokenizer_path, tmp_path):
    """`init_from`: training in stages (the shipped model is the checkpoint of the next stage)."""
    _write_corpus(tmp_path / "corpus")
    _write_corpus(tmp_path / "more", n=2)
    first = tmp_path / "run"
    first.mkdir()
    (first / "tokenizer.model").write_bytes(tokenizer_path.read_bytes())
    train(_tiny_train_config(tmp_path, max_steps=3), log=lambda _: None)
    stage1 = load_file(str(first / "model" / "model.safetensors"))
    # A stage with no step to take writes the model it started from, unchanged, with its tokenizer.
    cfg = _tiny_train_config(tmp_path, out=str(tmp_path / "stage2"), init_from=str(first / "model"), max_steps=0,
                             more_corpora=(str(tmp_path / "more"),), d_model=64)  # architecture comes from init
    logs = []
    train(cfg, log=logs.append)
    assert "6 items" in logs[0]  # both corpus folders
    same = load_file(str(tmp_path / "stage2" / "model" / "model.safetensors"))
    assert all(torch.equal(stage1[k], same[k]) for k in stage1)
    assert (tmp_path / "stage2" / "tokenizer.model").read_bytes() == tokenizer_path.read_bytes()
    # Two steps on: the weights move, and the record counts both stages.
    train(_tiny_train_config(tmp_path, out=str(tmp_path / "stage2b"), init_from=str(first / "model"),
                             max_steps=2), log=lambda _: None)
    moved = load_file(str(tmp_path / "stage2b" / "model" / "model.safetensors"))
    assert any(not torch.equal(stage1[k], moved[k]) for k in stage1)
    record = json.loads((tmp_path / "stage2b" / "model" / "config.json").read_text())["training"]
    assert [s["steps"] for s in record["stages"]] == [3, 2] and record["steps"] == 5
    assert record["stages"][1]["corpora"] == ["corpus"]


def test_a_stage_with_another_delay_than_its_start_is_refused(tokenizer_path, tmp_path):
    _write_corpus(tmp_path / "corpus")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tokenizer.model").write_bytes(tokenizer_path.read_bytes())
    train(_tiny_train_config(tmp_path, max_steps=1), log=lambda _: None)
    with pytest.raises(ValueError, match="delay is 3 frames.*--delay-frames 4.*--change-delay"):
        train(_tiny_train_config(tmp_path, out=str(tmp_path / "b"), init_from=str(tmp_path / "run" / "model"),
                                 delay_frames=4), log=lambda _: None)


def test_a_change_delay_stage_starts_from_the_weights_and_moves_the_delay(tokenizer_path, tmp_path):
    _write_corpus(tmp_path / "corpus")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tokenizer.model").write_bytes(tokenizer_path.read_bytes())
    train(_tiny_train_config(tmp_path, max_steps=1), log=lambda _: None)
    start = tmp_path / "run" / "model"
    # lr 0: the stage's one step leaves the weights where they started, so they must be the start's
    out = train(_tiny_train_config(tmp_path, out=str(tmp_path / "d5"), init_from=str(start), delay_frames=5,
                                   change_delay=True, max_steps=1, lr=0.0), log=lambda _: None)
    moved, before = lab.load(out), lab.load(start)
    assert moved.cfg.delay_frames == 5 and before.cfg.delay_frames == 3
    assert all(torch.equal(a, b) for a, b in zip(moved.state_dict().values(), before.state_dict().values()))
    record = json.loads((out / "config.json").read_text())["training"]
    assert [s["delay_frames"] for s in record["stages"]] == [3, 5] and record["delay_frames"] == 5


def test_training_sentences_come_from_every_training_folder_and_no_other(tmp_path):
    from lab.train import training_sentences

    for folder, text in [("train", "Set a timer."), ("train-shuffle", "timer set a"), ("val", "Call my mother.")]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.json").write_text(json.dumps({"sentences": [text]}))
    assert training_sentences(tmp_path) == {"set a timer", "timer set a"}
    assert training_sentences(tmp_path / "nothing") == set()


def test_bfloat16_training_moves_float32_weights_and_says_so(tokenizer_path, tmp_path):
    """precision="bfloat16": the products run under bf16 autocast, the weights and the record stay honest."""
    _write_corpus(tmp_path / "corpus")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tokenizer.model").write_bytes(tokenizer_path.read_bytes())
    train(_tiny_train_config(tmp_path, max_steps=0), log=lambda _: None)
    start = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    cfg = _tiny_train_config(tmp_path, out=str(tmp_path / "half"), init_from=str(tmp_path / "run" / "model"),
                             max_steps=2, precision="bfloat16")
    logs = []
    train(cfg, log=logs.append)
    assert "bfloat16" in logs[0]
    moved = load_file(str(tmp_path / "half" / "model" / "model.safetensors"))
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in moved.values())
    assert any(not torch.equal(start[k], moved[k]) for k in start)
    record = json.loads((tmp_path / "half" / "model" / "config.json").read_text())["training"]
    assert record["stages"][-1]["precision"] == "bfloat16"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16, got 'fp8'"):
        train(_tiny_train_config(tmp_path, out=str(tmp_path / "bad"), precision="fp8"), log=lambda _: None)


def test_the_attention_of_a_whole_sequence_is_float32_under_bfloat16_autocast(monkeypatch):
    """Its bf16 backward is several times slower on a CPU: the linear layers get bf16, attention does not,
    and a bf16 forward stays within bf16's rounding of the float32 one."""
    torch.manual_seed(0)
    from lab.config import DSMConfig

    model = DSM(DSMConfig(d_model=64, num_layers=2, num_heads=4, ffn_hidden=128, text_vocab_out=50,
                          text_vocab_in=51, context=20))
    audio, text = torch.randn(2, 12, 64), torch.randint(0, 50, (2, 12))
    full, _ = model(audio, text)
    seen, attend = [], F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda q, *a, **k: seen.append(q.dtype) or attend(q, *a, **k))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half, _ = model(audio, text)
    assert seen == [torch.float32, torch.float32] and half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() < 0.1 * full.abs().max()


def test_a_model_step_takes_one_thread_while_other_work_shares_the_cores(tokenizer_path, tmp_path, monkeypatch):
    """Two threads on two shared cores wait at every barrier for the one that is not running: the loop steps
    on `threads_when_shared` while the load average (less its own threads) says another process is busy."""
    import lab.compute

    _write_corpus(tmp_path / "corpus")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tokenizer.model").write_bytes(tokenizer_path.read_bytes())
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(lab.compute.os, "getloadavg", lambda: (5.0, 5.0, 5.0))  # 2 model + 1 batch + 2 more
        assert lab.compute.cores_shared()
        logs = []
        train(_tiny_train_config(tmp_path, max_steps=1, threads=2), log=logs.append)
        assert "model step on 1 thread, other work shares the cores" in logs and torch.get_num_threads() == 1
        monkeypatch.setattr(lab.compute.os, "getloadavg", lambda: (2.5, 2.5, 2.5))  # only its own threads
        assert not lab.compute.cores_shared()
        logs = []
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "tokenizer.model").write_bytes(tokenizer_path.read_bytes())
        train(_tiny_train_config(tmp_path, out=str(tmp_path / "b"), max_steps=1, threads=2), log=logs.append)
        assert "model step on 2 threads" in logs and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
