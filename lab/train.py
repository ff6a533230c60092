"""DSM training for the embedded model, on the CPU, from a synthetic corpus with exact word timings.

Targets on the 12.5 Hz grid (one step per 80 ms frame), for a word that starts in frame f:
    step f + D - 1: EPAD ("a word starts next"),  steps f + D, f + D + 1, ...: its pieces,  else PAD.
When words come faster than the grid allows (EPAD + pieces need 1 + n steps), a word is pushed to the next
free step; the word's timestamp moves with it, and the model learns the same rule.
Extra heads, one per horizon h: at step t (which has heard audio up to t x 80 ms), class 0 = "no voice
activity in the next h seconds" (Kyutai's semantics), class 1 otherwise. After the file, silence is assumed:
a turn that ended stays ended.

Teacher forcing with corrupted text inputs (the model must also cope with its own mistakes when it streams),
augmentation redrawn at every batch (`lab.augment`: speed, rooms, microphones, telephone band, noise and
babble, masking; here: gain and a sub-frame shift so that words fall anywhere within a frame), AdamW with
warm-up and cosine decay, a fixed seed, checkpoints and resume (safetensors only).

The text targets are the words as a transcript writes them (the corpus's `written` field: capitals, "." and
"?"), so the model learns punctuation from the audio: a question is heard in its intonation.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentConfig, Augmenter
from .checkpoint import save
from .compute import fit_threads, training_precision
from .model import DSM, FRAME_RATE, FRAME_SIZE, DSMConfig
from .stages import read_init, stage_model_config, training_record
from .tokenizer import Tokenizer, train_tokenizer


@dataclass
class TrainConfig:
    corpus: str  # folder of synth items (NAME.wav + NAME.json)
    out: str  # run folder: checkpoints, tokenizer, log
    delay_frames: int = 6
    d_model: int = 256
    num_layers: int = 6
    num_heads: int = 8
    ffn_hidden: int = 704
    context: int = 250
    vocab_size: int = 1000
    batch_size: int = 24
    lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup_steps: int = 300
    max_steps: int = 20_000
    minutes: float = 50.0  # wall-clock budget; the cosine schedule is stretched to fit it
    pad_weight: float = 0.3  # PAD is most of the text stream: down-weighted
    eot_weight: float = 0.5
    token_noise: float = 0.08  # probability of corrupting each text input token
    p_digital_silence: float = 0.4  # share of items whose end is exact zeros
    max_tail_s: float = 3.0  # extra silence after an item, drawn from [0, max_tail_s]
    max_seconds: float = 10.0  # longer items are left out (cropping one would cut its turn)
    seed: int = 0
    augment: bool = True  # lab.augment on every item (off: gain, white noise and shift only, as before)
    holdout: tuple[str, ...] = ()  # folders whose sentences are dropped from training (val and test sets)
    more_corpora: tuple[str, ...] = ()  # further corpus folders, trained on together with `corpus`
    # A model folder to continue from (its weights, architecture and tokenizer): training in stages, each
    # stage a fresh optimiser and schedule. The shipped model is itself the checkpoint of the next stage, so a
    # training longer than one sitting needs nothing but the repository.
    init_from: str = ""
    # A stage from `init_from` normally keeps its delay. With change_delay it trains at `delay_frames` instead:
    # the weights have the same shape at any delay, only the text targets move. The delay sweep uses it, so
    # that its models share one start and differ only in D.
    change_delay: bool = False
    # Re-read the corpus folder this often (0: never), so training can start while `dsm-lab synth` is still
    # writing it: on two cores the two overlap, and the first steps do not need the whole corpus.
    reload_every_s: float = 0.0
    # While other work shares the cores (the synthesiser writing the corpus beside stage 1), a model step on
    # several threads stalls at every barrier, waiting for a thread that is not running: several times slower
    # than one thread. So the step takes `threads_when_shared` threads while the load average says so,
    # checked at the start and at every reload.
    threads_when_shared: int = 1
    ckpt_every_s: float = 300.0
    threads: int = 0  # torch threads (0: torch's default, one per core)
    # "bfloat16": the linear layers run under bf16 autocast (weights, optimiser and attention stay fp32), about
    # 1.5x the steps per minute on a CPU that multiplies bf16 natively (AMX / AVX-512 BF16) or a GPU; "auto"
    # picks it there and float32 elsewhere (emulated bf16 is slower than fp32).
    precision: str = "auto"
    name: str = "dsm-tiny-en"
    eot_horizons_s: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    extra: dict = field(default_factory=dict)

    def model_config(self, vocab: int) -> DSMConfig:
        return DSMConfig(d_model=self.d_model, num_layers=self.num_layers, num_heads=self.num_heads,
                         ffn_hidden=self.ffn_hidden, context=self.context, text_vocab_out=vocab,
                         text_vocab_in=vocab + 1, delay_frames=self.delay_frames,
                         eot_horizons_s=self.eot_horizons_s, eot_head_dim=2, name=self.name)


# ------------------------------------------------------------------------------------------------ data


@dataclass
class Item:
    audio: np.ndarray  # int16, 24 kHz
    words: list[tuple[str, float, float]]  # text, start_s, end_s


def sentence_key(text: str) -> str:
    """A sentence as compared across splits: lower case, letters and spaces only."""
    return " ".join("".join(c for c in text.lower() if c.isalpha() or c == " ").split())


def corpus_sentences(folder: str | Path) -> set[str]:
    """Every sentence spoken in a corpus folder (by `sentence_key`)."""
    out = set()
    for p in Path(folder).glob("*.json"):
        meta = json.loads(p.read_text())
        out.update(sentence_key(s) for s in meta.get("sentences") or [meta.get("text", "")])
    return out


def training_sentences(root: str | Path) -> set[str]:
    """Every sentence of every training folder under a corpus root (`train`, `train-shuffle`, ...: the
    folders named train*), the set that evaluation items are de-duplicated against."""
    folders = sorted(d for d in Path(root).glob("train*") if d.is_dir())
    return set().union(*(corpus_sentences(d) for d in folders)) if folders else set()


def load_corpus(folder: str | Path | tuple, max_seconds: float, holdout: tuple[str, ...] = (),
                log=None) -> list[Item]:
    """The items of a corpus folder (or of several); those that share a sentence with a `holdout` folder are
    left out."""
    import soundfile as sf

    items = []
    folders = [Path(f) for f in (folder if isinstance(folder, (tuple, list)) else [folder])]
    paths = sorted(p for f in folders for p in f.glob("*.json"))
    if not paths:
        raise ValueError(f"no items (*.json) in corpus folder {', '.join(map(str, folders))}")
    held = set().union(*(corpus_sentences(h) for h in holdout)) if holdout else set()
    dropped = 0
    for p in paths:
        meta = json.loads(p.read_text())
        if meta["duration"] > max_seconds:
            continue
        if held and any(sentence_key(s) in held for s in meta.get("sentences") or []):
            dropped += 1
            continue
        audio, rate = sf.read(str(p.with_name(meta["audio"])), dtype="int16")
        if rate != 24_000:
            raise ValueError(f"{p}: corpus audio must be 24 kHz, got {rate}")
        items.append(Item(audio, [(w.get("written", w["text"]), w["start"], w["end"]) for w in meta["words"]]))
    if log and holdout:
        log(f"left out {dropped} training items sharing a sentence with {', '.join(map(str, holdout))}")
    return sorted(items, key=lambda it: len(it.audio))  # by length, for batches of similar lengths


def text_targets(words, tokenizer: Tokenizer, n_steps: int, delay: int) -> tuple[np.ndarray, list[float]]:
    """The text stream of one item: (n_steps,) token ids, and each placed word's start step."""
    tgt = np.full(n_steps, tokenizer.pad_id, dtype=np.int64)
    next_free, placed = 0, []
    for text, start, _ in words:
        pieces = tokenizer.encode_word(text)
        epad = max(int(start * FRAME_RATE) + delay - 1, next_free)
        if epad + len(pieces) >= n_steps:
            break
        tgt[epad] = tokenizer.epad_id
        tgt[epad + 1: epad + 1 + len(pieces)] = pieces
        next_free = epad + 1 + len(pieces)
        placed.append(epad + 1)
    return tgt, placed


def eot_targets(words, n_steps: int, horizons: tuple[float, ...]) -> np.ndarray:
    """(n_steps, n_heads): 0 where no word is heard within [now, now + h], else 1 (class indices)."""
    now = np.arange(n_steps) / FRAME_RATE  # step t has heard audio up to t x 80 ms
    labels = np.zeros((n_steps, len(horizons)), dtype=np.int64)
    for _, start, end in words:
        for j, h in enumerate(horizons):
            labels[(now <= end) & (now + h >= start), j] = 1
    return labels


class Batches:
    """Random batches with augmentation redrawn every time."""

    def __init__(self, items: list[Item], tokenizer: Tokenizer, cfg: TrainConfig, seed: int):
        self.items, self.tok, self.cfg = items, tokenizer, cfg
        self.rng = np.random.default_rng(seed)
        self.augment = None
        if cfg.augment:
            def babble_source(rng):
                return self.items[rng.integers(len(self.items))].audio.astype(np.float32) / 32768.0

            self.augment = Augmenter(AugmentConfig(), np.random.default_rng(seed + 1), pool=babble_source)

    def __call__(self):
        cfg, rng = self.cfg, self.rng
        # Items of similar length (a window of the length-sorted list) waste little on padding.
        window = min(len(self.items), 8 * cfg.batch_size)
        first = rng.integers(len(self.items) - window + 1)
        chosen = [self.items[first + i] for i in rng.integers(window, size=cfg.batch_size)]
        if self.augment is not None:
            chosen = [Item(*self.augment(it.audio.astype(np.float32) / 32768.0, it.words)) for it in chosen]
        shifts = rng.integers(0, FRAME_SIZE, size=len(chosen))
        # Some extra silence after the turn: a stream goes on after the speaker stops, and the model must
        # keep writing PAD there (without it, it invents words in long silences).
        tails = (rng.uniform(0, cfg.max_tail_s, size=len(chosen)) * 24_000).astype(int)
        n_steps = max(math.ceil((len(it.audio) + s + t) / FRAME_SIZE)
                      for it, s, t in zip(chosen, shifts, tails)) + 1
        audio = np.zeros((len(chosen), n_steps * FRAME_SIZE), dtype=np.float32)
        text = np.zeros((len(chosen), n_steps), dtype=np.int64)
        eot = np.zeros((len(chosen), n_steps, len(cfg.eot_horizons_s)), dtype=np.int64)
        for b, (item, shift) in enumerate(zip(chosen, shifts)):
            x = _as_float(item.audio) * 10 ** (rng.uniform(-12, 6) / 20)
            audio[b, shift: shift + len(x)] = x
            words = [(w, s + shift / 24_000, e + shift / 24_000) for w, s, e in item.words]
            text[b], _ = text_targets(words, self.tok, n_steps, cfg.delay_frames)
            eot[b] = eot_targets(words, n_steps, cfg.eot_horizons_s)
        # A floor of white noise at a random SNR against the item's level (lab.augment adds the real noises).
        level = np.sqrt((audio**2).mean(1, keepdims=True)) + 1e-5
        snr_db = rng.uniform(15, 45, size=(len(chosen), 1))
        audio += rng.standard_normal(audio.shape, dtype=np.float32) * (level * 10 ** (-snr_db / 20)).astype(np.float32)
        # Digital silence happens too (a flush feeds zeros, a muted microphone gives them): for some items,
        # everything from a point after the last word is exact zeros.
        for b, (item, shift) in enumerate(zip(chosen, shifts)):
            if item.words and rng.random() < cfg.p_digital_silence:
                last_end = int(item.words[-1][2] * 24_000) + shift
                audio[b, last_end + int(rng.uniform(0.05, 1.0) * 24_000):] = 0.0
        return (torch.from_numpy(audio).view(len(chosen), n_steps, FRAME_SIZE), torch.from_numpy(text),
                torch.from_numpy(eot))


def _as_float(audio: np.ndarray) -> np.ndarray:
    return audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32)


class Prefetch:
    """Makes the next batch in a thread while the model trains on this one (numpy and scipy release the GIL)."""

    def __init__(self, make):
        import queue
        import threading

        self.make, self.queue = make, queue.Queue(maxsize=2)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                self.queue.put(("ok", self.make()))
            except Exception as e:  # noqa: BLE001 - re-raised in the training loop
                self.queue.put(("error", e))
                return

    def __call__(self):
        kind, value = self.queue.get()
        if kind == "error":
            raise value
        return value


def corrupt_inputs(text_in: torch.Tensor, p: float, vocab: int, pad_id: int, gen: torch.Generator):
    """Replace a fraction p of input tokens: text -> PAD (a missed token), PAD -> a random piece."""
    hit = torch.rand(text_in.shape, generator=gen) < p
    random_piece = torch.randint(4, vocab, text_in.shape, generator=gen)
    replaced = torch.where(text_in == pad_id, random_piece, torch.full_like(text_in, pad_id))
    out = torch.where(hit, replaced, text_in)
    out[:, 0] = text_in[:, 0]  # keep the initial token
    return out


# ------------------------------------------------------------------------------------------------ loop


def losses(model: DSM, batch, cfg: TrainConfig, gen: torch.Generator | None = None):
    frames, text, eot = batch
    mcfg = model.cfg
    audio_in = model.align_audio(model.frontend(frames), "training")
    text_in = torch.cat([torch.full_like(text[:, :1], mcfg.initial_text_id), text[:, :-1]], 1)
    if gen is not None:
        text_in = corrupt_inputs(text_in, cfg.token_noise, mcfg.text_vocab_out, mcfg.pad_id, gen)
    logits, eot_logits = model(audio_in, text_in)
    weights = torch.ones(mcfg.text_vocab_out)
    weights[mcfg.pad_id] = cfg.pad_weight
    text_loss = F.cross_entropy(logits.flatten(0, 1), text.flatten(), weight=weights)
    eot_loss = F.cross_entropy(eot_logits.flatten(0, 2), eot.flatten())
    pred = logits.argmax(-1)
    is_text = text != mcfg.pad_id
    accuracy = ((pred == text) & is_text).sum() / is_text.sum().clamp(min=1)
    return text_loss, eot_loss, accuracy


def _save_train_state(run: Path, opt: torch.optim.Optimizer, step: int, elapsed: float, rng_state: dict):
    from safetensors.torch import save_file

    tensors = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"{i}.{k}"] = v.detach().clone().reshape(-1) if v.dim() == 0 else v.detach().clone()
    save_file(tensors, str(run / "train_state.safetensors"))
    (run / "train_state.json").write_text(json.dumps({"step": step, "elapsed_s": elapsed, **rng_state}))


def _load_train_state(run: Path, opt: torch.optim.Optimizer) -> dict:
    from safetensors.torch import load_file

    tensors = load_file(str(run / "train_state.safetensors"))
    sd = opt.state_dict()
    for key, v in tensors.items():
        i, k = key.split(".", 1)
        sd["state"].setdefault(int(i), {})[k] = v.reshape(()) if k == "step" else v
    opt.load_state_dict(sd)
    return json.loads((run / "train_state.json").read_text())


def train(cfg: TrainConfig, resume: bool = False, log=print) -> Path:
    """Train and write the model folder `cfg.out/model`; returns that folder."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    default_threads = cfg.threads or torch.get_num_threads()  # torch's default: one per core

    def use_threads():
        fit_threads(default_threads, cfg.threads_when_shared, log)

    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    tok_path = run / "tokenizer.model"
    init = read_init(cfg) if cfg.init_from else None
    if init is not None and not tok_path.exists():
        tok_path.write_bytes(init["tokenizer"].read_bytes())
    if not tok_path.exists():
        from .synth.grammar import sample_texts, vocabulary

        vocab = vocabulary()
        texts = sample_texts(20_000, seed=cfg.seed, written=True) + vocab + [w.capitalize() for w in vocab]
        train_tokenizer(texts, tok_path, cfg.vocab_size)
    tok = Tokenizer(tok_path)
    model = DSM(stage_model_config(init["model"], cfg) if init else cfg.model_config(cfg.vocab_size))
    if init is not None:
        model.load_state_dict(init["model"].state_dict())
    model.tokenizer = tok
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    step, elapsed = 0, 0.0
    if resume and (run / "train_state.json").exists():
        from .checkpoint import load_state, read_safetensors

        load_state(model, read_safetensors(run / "model" / "model.safetensors"), run / "model")
        info = _load_train_state(run, opt)
        step, elapsed = info["step"], info["elapsed_s"]
        log(f"resumed at step {step} ({elapsed / 60:.1f} min)")
    corpora = (cfg.corpus, *cfg.more_corpora)
    use_threads()
    n_seen = _count_items(corpora)  # counted first: a later item is never missed
    items = load_corpus(corpora, cfg.max_seconds, tuple(cfg.holdout), log=log)
    batches = Prefetch(Batches(items, tok, cfg, seed=cfg.seed * 1000 + step))
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + step)
    (run / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    precision = training_precision(cfg.precision)
    log(f"{len(items)} items, {model.n_params / 1e6:.2f} M parameters, budget {cfg.minutes} min, {precision}")
    budget_s = cfg.minutes * 60
    start, last_ckpt = time.perf_counter() - elapsed, time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=cfg.max_steps, initial=step, unit="step", mininterval=5)
    last_reload = time.perf_counter()
    model.train()
    while step < cfg.max_steps and (elapsed := time.perf_counter() - start) < budget_s:
        # Schedule by the larger of step and time progress, so the run ends cooled down either way.
        progress = max(step / cfg.max_steps, elapsed / budget_s)
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            text_loss, eot_loss, acc = losses(model, batches(), cfg, gen)
        opt.zero_grad(set_to_none=True)
        (text_loss + cfg.eot_weight * eot_loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(text=f"{text_loss.item():.3f}", eot=f"{eot_loss.item():.3f}", acc=f"{acc.item():.3f}",
                            lr=f"{lr:.2e}")
            with (run / "log.jsonl").open("a") as f:
                f.write(json.dumps({"step": step, "elapsed_s": round(elapsed, 1), "lr": lr,
                                    "text_loss": text_loss.item(), "eot_loss": eot_loss.item(),
                                    "token_acc": acc.item()}) + "\n")
        if cfg.reload_every_s and time.perf_counter() - last_reload > cfg.reload_every_s:
            last_reload = time.perf_counter()
            n_files = _count_items(corpora)
            use_threads()
            grown = load_corpus(corpora, cfg.max_seconds, tuple(cfg.holdout)) if n_files > n_seen else []
            n_seen = max(n_seen, n_files)
            if len(grown) > len(batches.make.items):
                log(f"step {step}: the corpus grew to {len(grown)} items")
                batches.make.items = grown  # the batch thread picks the new list up at its next batch
        if time.perf_counter() - last_ckpt > cfg.ckpt_every_s:
            _checkpoint(model, run, opt, step, time.perf_counter() - start, tok_path, cfg)
            last_ckpt = time.perf_counter()
    bar.close()
    _checkpoint(model, run, opt, step, time.perf_counter() - start, tok_path, cfg)
    log(f"done: {step} steps in {(time.perf_counter() - start) / 60:.1f} min -> {run / 'model'}")
    return run / "model"


def _count_items(folders) -> int:
    return sum(1 for f in folders for _ in Path(f).glob("*.json"))


def _checkpoint(model, run, opt, step, elapsed, tok_path, cfg):
    model.eval()
    save(model, run / "model", tok_path, extra={"training": training_record(cfg, step, elapsed)})
    _save_train_state(run, opt, step, elapsed, {})
    model.train()
