"""Streaming: PCM in, at any rate and in any chunk size, events out, for one stream or a batch of them.

    s = model.stream()
    for chunk in microphone:                       # any length, any rate, int16 or float
        for event in s.feed(chunk, sample_rate=48000):
            ...                                    # Step every 80 ms, Word when complete, EndOfTurn
    s.flush()                                      # speaker stopped: drain the delay now

A single stream is a batch of one: `model.streams(n)` and `model.stream()` are the same class, so a fix or
a hook in one is in both. Everything a stream remembers lives in one `StreamState` that the streamer owns
and a notebook can print.

Frame alignment (Kyutai's two conventions, one frame = 80 ms apart; details and moshi's code in lab/kyutai.py):
- "training" (default; Kyutai's training, Rust server, and moshi's run_inference.py, which feeds the first
  frame twice): the step run when frame t arrives sees the embedding of frame t-1 next to the text token of
  step t-1. Step 0 sees the initial embedding.
- "scripts" (Kyutai's PyTorch example scripts, which give moshi's LMGen each frame once): that step sees
  frame t itself; frame 0 is masked by the initial embedding. The model then hears one frame more before it
  writes.
Either way a step runs when its frame arrives, and `Step.time_s` is the end of that frame.
"""

from __future__ import annotations

import copy
import numbers
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .audio import StreamingResampler, check_sample_rate, load_audio, to_mono_float
from .config import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from .events import EndOfTurn, Step, Transcript, Word, steps_frame, with_word_ends
from .hooks import HookPoint
from .kvcache import KVCache
from .live_turns import ThresholdEndOfTurn
from .tokenizer import WordAssembler

ALIGNMENTS = ("training", "scripts")


@dataclass
class StreamState:
    """All a batch of streams remembers. Per slot: the samples waiting for a full frame, the resampler,
    the frontend's state, the embedding of the last frame (for the "training" alignment), the last text
    token, the word being assembled, the end-of-turn policy; per batch: the KV ring buffers."""

    pending: list[np.ndarray]  # per slot: 24 kHz samples not yet a whole frame (< 1920)
    resamplers: list[StreamingResampler | None]  # per slot, made for the rate of its first chunk
    frontend: object  # filterbank tails (B, 240), or the Mimi encoder's state
    last_frame_emb: torch.Tensor  # (B, d): the previous frame's embedding
    last_token: torch.Tensor  # (B,): the text token written at the previous step
    words: list[WordAssembler]
    policies: list  # per slot: its end-of-turn policy (lab.live_turns), or None
    cache: KVCache
    samples_in: list[int] = field(default_factory=list)  # per slot: 24 kHz samples received

    @property
    def batch_size(self) -> int:
        return len(self.pending)

    def __repr__(self):
        lines = [f"StreamState(batch={self.batch_size})"]
        for i in range(self.batch_size):
            lines.append(
                f"  slot {i}: step={int(self.cache.next_pos[i])}, pending={len(self.pending[i])} samples, "
                f"received={self.samples_in[i]} samples, last_token={int(self.last_token[i])}, "
                f"partial word={self.words[i].partial!r}, resampler={self.resamplers[i]!r}")
        lines.append(f"  {self.cache!r}")
        return "\n".join(lines)


class Streamer:
    """B live streams stepped together (B = 1 for `model.stream()`)."""

    def __init__(self, model, batch_size: int = 1, alignment: str | None = None, eot_horizon_s: float = 2.0,
                 eot_threshold: float = 0.5, end_of_turn=None):
        """`end_of_turn`: a live policy (lab.live_turns) that each stream gets a copy of; by default
        ThresholdEndOfTurn(eot_horizon_s, eot_threshold), if the model has that head."""
        if model.tokenizer is None:
            raise ValueError("this model has no tokenizer; load it with lab.load() to stream text")
        self.model = model
        self.alignment = alignment or getattr(model, "alignment", "training")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        self.batch_size = batch_size
        self.horizons = model.cfg.eot_horizons_s
        if end_of_turn is None and eot_horizon_s in self.horizons:
            end_of_turn = ThresholdEndOfTurn(eot_horizon_s, eot_threshold)
        if end_of_turn is not None and end_of_turn.horizon_s is not None and end_of_turn.horizon_s not in self.horizons:
            raise ValueError(f"end_of_turn policy {end_of_turn.name!r} reads the {end_of_turn.horizon_s:g} s head; "
                             f"this model's heads: {[f'{h:g} s' for h in self.horizons] or 'none'}")
        self._policy = end_of_turn
        self._hook_points = [mod for mod in model.modules() if isinstance(mod, HookPoint)]
        self.state = self._new_state()

    # ------------------------------------------------------------------------------------------- state
    def _new_state(self) -> StreamState:
        B, m = self.batch_size, self.model
        p = next(m.parameters())
        return StreamState(
            pending=[np.zeros(0) for _ in range(B)],
            resamplers=[None] * B,
            frontend=m.init_frontend_state(B),
            last_frame_emb=torch.zeros(B, m.cfg.d_model, dtype=p.dtype, device=p.device),
            last_token=torch.full((B,), m.cfg.initial_text_id, dtype=torch.long, device=p.device),
            words=[self._assembler(i) for i in range(B)],
            policies=[self._new_policy() for _ in range(B)],
            cache=m.new_cache(B),
            samples_in=[0] * B,
        )

    def _new_policy(self):
        if self._policy is None:
            return None
        policy = copy.deepcopy(self._policy)
        policy.reset()
        return policy

    def _assembler(self, i):
        # "scripts" writes each token one step earlier than "training" (the same token: its step t is the
        # training step t + 1), so its dates subtract one frame less.
        shift = 1 / FRAME_RATE if self.alignment == "scripts" else 0.0
        return WordAssembler(self.model.tokenizer, FRAME_RATE, self.delay_s - shift, stream=i)

    @property
    def delay_s(self) -> float:
        cfg = self.model.cfg
        return cfg.delay_s + cfg.silence_prefix_s

    def _start(self, i: int, sample_rate: int):
        """A slot's first audio: a resampler for its rate, and the model's silence prefix (Kyutai's 2.6B
        model expects 1 s of it) put before the first sample, so every stream gets it, not only transcribe."""
        self.state.resamplers[i] = StreamingResampler(int(sample_rate), SAMPLE_RATE)
        self.state.pending[i] = np.zeros(round(self.model.cfg.silence_prefix_s * SAMPLE_RATE))

    def reset(self, index: int | None = None):
        """Start stream `index` afresh (all streams if None); the other slots are untouched."""
        if index is None:
            self.state = self._new_state()
            return
        s, m = self.state, self.model
        s.pending[index], s.resamplers[index], s.samples_in[index] = np.zeros(0), None, 0
        m.reset_frontend_state(s.frontend, index)
        s.last_frame_emb[index] = 0
        s.last_token[index] = m.cfg.initial_text_id
        s.words[index] = self._assembler(index)
        if s.policies[index] is not None:
            s.policies[index].reset()
        s.cache.reset(index)

    # ------------------------------------------------------------------------------------------- input
    def _accept(self, i: int, chunk, sample_rate) -> np.ndarray:
        """Check and resample one slot's chunk. Raises before any state changes."""
        rate = check_sample_rate(sample_rate)
        x = to_mono_float(chunk, what=f"audio chunk for stream {i}")
        r = self.state.resamplers[i]
        if r is not None and r.rate_in != rate:
            raise ValueError(f"stream {i} started at {r.rate_in} Hz and got a chunk at {rate} Hz; "
                             "reset() the stream to change the sample rate")
        return x

    def feed(self, chunk, sample_rate: int = SAMPLE_RATE):
        """Feed audio; returns the events of the steps it completed.

        One stream: `feed(chunk, rate) -> [events]`, the chunk an array or a plain list of samples. A batch:
        `feed([chunk_0, ..., chunk_{B-1}], rate) -> [[events of stream 0], ...]`; a None chunk means that
        stream has nothing new.
        """
        batch = _is_batch(chunk)
        if not batch and self.batch_size > 1:
            raise ValueError(f"this is a batch of {self.batch_size} streams: feed a list of {self.batch_size} "
                             "chunks (one per stream, None for a stream with nothing new)")
        chunks = list(chunk) if batch else [chunk]
        if len(chunks) != self.batch_size:
            raise ValueError(f"expected {self.batch_size} chunks (one per stream), got {len(chunks)}")
        checked = [None if c is None else self._accept(i, c, sample_rate) for i, c in enumerate(chunks)]
        s = self.state
        for i, x in enumerate(checked):  # nothing below can fail on bad input
            if x is None or len(x) == 0:
                continue
            if s.resamplers[i] is None:
                self._start(i, sample_rate)
            y = s.resamplers[i].push(x)
            s.samples_in[i] += len(y)
            s.pending[i] = np.concatenate([s.pending[i], y])
        events = self._run_ready_frames()
        return events if batch else events[0]

    def flush(self, index: int | None = None, extra_frames: int | None = None):
        """Drain the delay now: complete the partial frame with silence, then step `delay_frames + 1`
        frames of silence as fast as the machine allows, instead of waiting for them in real time.
        The word still being assembled is then complete: it comes out too."""
        n = self.model.cfg.delay_frames + 1 if extra_frames is None else extra_frames
        s = self.state
        slots = range(self.batch_size) if index is None else [index]
        for i in slots:
            if s.resamplers[i] is not None:
                s.pending[i] = np.concatenate([s.pending[i], s.resamplers[i].drain()])
            missing = (-len(s.pending[i])) % FRAME_SIZE
            s.pending[i] = np.concatenate([s.pending[i], np.zeros(missing + n * FRAME_SIZE)])
        events = self._run_ready_frames()
        for i in slots:
            step = int(s.cache.next_pos[i])  # the step that would have completed the word
            word = s.words[i].close(step, self._time_s(step - 1))
            if word is not None:
                events[i].append(word)
        return events[0] if self.batch_size == 1 else events

    # -------------------------------------------------------------------------------------------- steps
    def _run_ready_frames(self) -> list[list]:
        s = self.state
        events: list[list] = [[] for _ in range(self.batch_size)]
        while True:
            active = [len(p) >= FRAME_SIZE for p in s.pending]
            if not any(active):
                return events
            frames = np.zeros((self.batch_size, FRAME_SIZE), dtype=np.float32)
            for i, ok in enumerate(active):
                if ok:
                    frames[i] = s.pending[i][:FRAME_SIZE]
                    s.pending[i] = s.pending[i][FRAME_SIZE:]
            for i, evs in enumerate(self._step(torch.from_numpy(frames), active)):
                events[i] += evs

    @torch.no_grad()
    def _step(self, frames: torch.Tensor, active: list[bool]) -> list[list]:
        m, s = self.model, self.state
        t0 = time.perf_counter()
        device = s.last_token.device
        # Only the rows from the first to the last active slot are computed: rows outside that span sit the
        # step out for free. A server hands out the lowest free slot, so a 64-slot pool with 3 clients steps
        # 3 rows, and clients whose frames arrive at different moments of the 80 ms step in bands of
        # neighbouring slots. (Only where the whole state can be cut into row views, and no hook listens:
        # hooks and recorders see every row of the batch.)
        lo, hi = self._rows_to_compute(active)
        cut = (lo, hi) != (0, self.batch_size)
        cache = s.cache.rows(lo, hi) if cut else s.cache
        frontend = s.frontend[lo:hi] if cut and s.frontend is not None else s.frontend
        active_rows = active[lo:hi]
        mask = torch.tensor(active_rows, device=device)  # on the model's device, like everything it meets
        every = all(active_rows)  # the common case: no masking at all (cheaper in the model and here)
        positions = cache.next_pos.tolist()
        m.step_positions, m.step_active = cache.next_pos, mask
        frame_emb = m.embed_frame(frames[lo:hi].to(device), frontend, None if every else mask)
        last_emb, last_token = s.last_frame_emb[lo:hi], s.last_token[lo:hi]
        step_emb = last_emb if self.alignment == "training" else frame_emb
        logits, p_eot = m.step(step_emb, last_token, cache, active=None if every else mask)
        tokens = logits.argmax(-1)
        if not every:
            frame_emb = torch.where(mask[:, None], frame_emb, last_emb)
            tokens = torch.where(mask, tokens, last_token)
        if cut:  # into the rows of the whole batch
            s.last_frame_emb[lo:hi], s.last_token[lo:hi] = frame_emb, tokens
        else:
            s.last_frame_emb, s.last_token = frame_emb, tokens
        tokens_out, p_out = tokens.tolist(), p_eot.tolist()  # waits for the device: compute_ms is the whole step
        compute_ms = (time.perf_counter() - t0) * 1000
        return [self._events(i, positions[i - lo], tokens_out[i - lo], p_out[i - lo], compute_ms, frames[i].numpy())
                if lo <= i < hi and active[i] else [] for i in range(self.batch_size)]

    def _rows_to_compute(self, active: list[bool]) -> tuple[int, int]:
        """The span of rows [lo, hi) this step computes."""
        every = (0, self.batch_size)
        lo = active.index(True)
        hi = self.batch_size - active[::-1].index(True)
        if (lo, hi) == every:
            return every
        frontend = self.state.frontend
        if frontend is not None and not isinstance(frontend, torch.Tensor):
            return every  # a Mimi encoder's state: not cut into rows
        if any(h.active for h in self._hook_points):
            return every
        return lo, hi

    def _time_s(self, step: int) -> float:
        """Stream time at which `step` could run: the end of its frame, in the time of the audio fed
        (the silence prefix does not count)."""
        return round((step + 1) / FRAME_RATE - self.model.cfg.silence_prefix_s, 4)

    def _events(self, i: int, step: int, token: int, p_eot: list[float], compute_ms: float,
                frame: np.ndarray) -> list:
        s, tok = self.state, self.model.tokenizer
        time_s = self._time_s(step)
        probs = dict(zip(self.horizons, p_eot))
        out: list = [Step(step, time_s, token, tok.piece(token), probs, compute_ms, stream=i)]
        out += s.words[i].push(step, token, time_s)
        policy = s.policies[i]
        if policy is not None:
            delivered = any(isinstance(e, Word) for e in out)  # a word came out at this step
            for t, p in policy.update(time_s, probs, delivered, frame):
                out.append(EndOfTurn(t, p, policy.name, stream=i))
        return out

    def __repr__(self):
        return f"Streamer(alignment={self.alignment!r}, delay={self.delay_s:.2f} s)\n{self.state!r}"


def _is_batch(chunk) -> bool:
    """A list of chunks, one per stream, as opposed to one chunk given as a plain list of samples."""
    return isinstance(chunk, (list, tuple)) and len(chunk) > 0 and not isinstance(chunk[0], numbers.Number)


def transcribe(model, source, sample_rate: int | None = None, alignment: str | None = None) -> Transcript:
    """A whole file or array through one stream, then flushed: the streaming result, not a batch one."""
    if isinstance(source, tuple):
        audio, sample_rate = source
    elif isinstance(source, (str, bytes, bytearray, memoryview)) or hasattr(source, "__fspath__"):
        audio, sample_rate = load_audio(source)  # a path, or the bytes of an encoded file
    else:
        audio = source
        if sample_rate is None:
            raise ValueError("transcribe(array) needs sample_rate=, or pass (array, sample_rate)")
    stream = Streamer(model, alignment=alignment)
    events = stream.feed(to_mono_float(audio, what="audio"), sample_rate)
    events += stream.flush()
    steps = [e for e in events if isinstance(e, Step)]
    words = with_word_ends(events)
    return Transcript(text=" ".join(w.text for w in words), words=words,
                      steps=steps_frame(steps, model.cfg.eot_horizons_s),
                      end_of_turns=[e for e in events if isinstance(e, EndOfTurn)])
