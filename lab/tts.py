"""The other direction: a toy text-to-speech model built from the same delayed streams.

Delayed-streams modeling puts text and audio on one 12.5 Hz grid and delays one against the other. Delay
the text and the model hears a little of the future before it writes: speech-to-text (`lab.model`). Delay
the audio and it reads a little of the future before it speaks: text-to-speech. Same transformer blocks,
same grid, same EPAD / PAD text stream; only which stream leads changes.

The text stream leads. A word that starts in audio frame f sits in the text stream as EPAD at step f - 1
and its pieces at steps f, f + 1, ... (`lab.train.text_targets` with no delay). The audio stream follows
`audio_delay` steps behind: at step t the model outputs the audio of frame t - audio_delay, so when it
speaks the start of a word it has already read that word's first pieces.

At every step the model outputs
- the audio of one 80 ms frame, as 8 log-mel spectra of 10 ms (a stand-in for Kyutai's Mimi codes, turned
  back into a waveform with Griffin-Lim, from librosa);
- the probability that the next word starts now (EPAD). Words come from the script, but *when* each one
  starts is the model's decision: after EPAD the word's pieces are fed in, one per step, and the model
  listens to its own audio to decide when the word is done. This is how a DSM text-to-speech model sets
  its own rhythm.

Training (`lab.tts_train`) is teacher-forced on clean speech of one espeak-ng voice, with noise on the fed-
back audio so that the model survives its own imperfect frames at generation time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import DSMConfig
from .extras import require
from .model import Block, RMSNorm

SAMPLE_RATE = 24_000
HOP = 240  # 10 ms: 8 spectra per 80 ms step
SUB = 8
N_FFT = 1024
N_MELS = 80
F_MAX = 8000.0


@dataclass
class TTSConfig:
    d_model: int = 192
    num_layers: int = 4
    num_heads: int = 4
    ffn_hidden: int = 512
    context: int = 250
    text_vocab: int = 1000  # the speech-to-text model's tokenizer: the two directions share it
    pad_id: int = 3
    epad_id: int = 0
    audio_delay: int = 2  # steps the audio follows the text
    mel_mean: float = 0.0  # log-mel normalisation, measured on the training audio
    mel_std: float = 1.0
    voice: str = "en-us+m3"
    name: str = "dsm-toy-tts"

    @property
    def frame_dim(self) -> int:
        return SUB * N_MELS

    def blocks_config(self) -> DSMConfig:
        return DSMConfig(d_model=self.d_model, num_layers=self.num_layers, num_heads=self.num_heads,
                         ffn_hidden=self.ffn_hidden, context=self.context, text_vocab_out=self.text_vocab,
                         text_vocab_in=self.text_vocab + 1, name=self.name)


# ------------------------------------------------------------------------------------------------ audio


def log_mel(audio: np.ndarray, cfg: TTSConfig | None = None) -> np.ndarray:
    """24 kHz mono -> (n_steps, SUB * N_MELS) normalised log-mel frames, 8 spectra of 10 ms per step."""
    librosa = require("librosa", "lab.tts.log_mel")

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"log_mel expects mono audio (samples,), got shape {audio.shape}")
    n_steps = len(audio) // (SUB * HOP)
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
                                         fmax=F_MAX, power=1.0)[:, :n_steps * SUB]
    logm = np.log(np.maximum(mel, 1e-5)).T  # (n_steps * SUB, N_MELS)
    if cfg is not None:
        logm = (logm - cfg.mel_mean) / cfg.mel_std
    return logm.reshape(n_steps, SUB * N_MELS).astype(np.float32)


def mel_to_audio(frames: np.ndarray, cfg: TTSConfig, n_iter: int = 32) -> np.ndarray:
    """(n_steps, SUB * N_MELS) normalised log-mel frames -> 24 kHz waveform, by Griffin-Lim (librosa)."""
    librosa = require("librosa", "lab.tts.mel_to_audio")

    logm = np.asarray(frames, dtype=np.float32).reshape(-1, N_MELS) * cfg.mel_std + cfg.mel_mean
    audio = librosa.feature.inverse.mel_to_audio(np.exp(logm).T, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP,
                                                 fmax=F_MAX, power=1.0, n_iter=n_iter)
    return (0.9 * audio / max(1e-4, float(np.abs(audio).max()))).astype(np.float32)


# ------------------------------------------------------------------------------------------------ model


class ToyTTS(nn.Module):
    """Text stream (leading) + audio stream (following) -> next audio frame, and "does a word start now?"."""

    def __init__(self, cfg: TTSConfig):
        super().__init__()
        self.cfg = cfg
        self.text_emb = nn.Embedding(cfg.text_vocab + 1, cfg.d_model)  # + the initial token
        self.audio_in = nn.Linear(cfg.frame_dim, cfg.d_model)
        self.audio_initial = nn.Parameter(torch.zeros(cfg.d_model))  # before the first frame exists
        block_cfg = cfg.blocks_config()
        self.blocks = nn.ModuleList(Block(block_cfg, i) for i in range(cfg.num_layers))
        self.out_norm = RMSNorm(cfg.d_model, block_cfg.norm_eps)
        self.audio_out = nn.Linear(cfg.d_model, cfg.frame_dim)
        self.word_start = nn.Linear(cfg.d_model, 1)  # logit of "EPAD now"
        self.tokenizer = None

    @property
    def initial_text_id(self) -> int:
        return self.cfg.text_vocab

    def forward(self, text_in: torch.Tensor, audio_in: torch.Tensor):
        """text_in (B, T) tokens of steps -1..T-2; audio_in (B, T, frame_dim) frames the model output at
        steps -1..T-2 (row 0 unused: step 0 sees the initial embedding). Returns the audio frames (B, T,
        frame_dim) and word-start logits (B, T) for steps 0..T-1."""
        a = self.audio_in(audio_in)
        a = torch.cat([self.audio_initial.expand(a.shape[0], 1, -1), a[:, 1:]], 1)
        x = self.text_emb(text_in) + a
        for block in self.blocks:
            x = block(x)
        x = self.out_norm(x)
        return self.audio_out(x), self.word_start(x).squeeze(-1)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def generate(self, text: str, max_steps: int = 240, tail_steps: int = 6) -> dict:
        """Speak `text` (words separated by spaces, as a transcript writes them). Returns the audio frames
        (n_steps, frame_dim), the text stream it chose, and the step at which each word started."""
        if self.tokenizer is None:
            raise ValueError("the model has no tokenizer: load it with lab.tts.load()")
        words = text.split()
        if not words:
            raise ValueError("generate: the text has no words")
        queue = [self.tokenizer.encode_word(w) for w in words]
        cfg = self.cfg
        text_stream, frames, starts = [], [np.zeros(cfg.frame_dim, np.float32)], []
        forced: list[int] = []
        end_step = None
        for t in range(max_steps):
            text_in = torch.tensor([[self.initial_text_id] + text_stream])
            audio_in = torch.from_numpy(np.stack(frames))[None]
            out, start_logit = self(text_in, audio_in)
            frames.append(out[0, -1].numpy())
            if forced:
                token = forced.pop(0)
            elif queue and torch.sigmoid(start_logit[0, -1]) > 0.5:
                token, forced = cfg.epad_id, queue.pop(0)
                starts.append(t + 1)
            else:
                token = cfg.pad_id
            text_stream.append(token)
            if not queue and not forced and end_step is None:
                end_step = t + 1 + cfg.audio_delay + tail_steps  # the last word's audio, then a little silence
            if end_step is not None and t + 1 >= end_step:
                break
        audio = np.stack(frames[1 + cfg.audio_delay:])  # frame k of the audio came out at step k + delay
        return {"frames": audio, "text_stream": text_stream, "word_start_steps": starts, "words": words,
                "complete": not queue and not forced}

    def speak(self, text: str, n_iter: int = 32) -> tuple[np.ndarray, dict]:
        """`text` -> (24 kHz waveform, what `generate` returned)."""
        out = self.generate(text)
        return mel_to_audio(out["frames"], self.cfg, n_iter=n_iter), out


# ------------------------------------------------------------------------------------------- checkpoints


def save(model: ToyTTS, folder: str | Path, tokenizer_path: str | Path, dtype=torch.float16) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    (folder / "tokenizer.model").write_bytes(Path(tokenizer_path).read_bytes())
    info = {"format": "dsm-lab-tts", "config": asdict(model.cfg), "weights": "model.safetensors",
            "tokenizer": "tokenizer.model", **getattr(model, "training_record", {})}
    (folder / "config.json").write_text(json.dumps(info, indent=2))
    return folder


def training_log(folder: str | Path | None = None) -> list[dict]:
    """The losses a model folder's training wrote (log.jsonl), one dict per logged step."""
    path = Path(folder or default_folder()) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def default_folder() -> Path:
    from .resources import package_path

    return package_path("data", "tts", "dsm-toy-tts")


def load(folder: str | Path | None = None) -> ToyTTS:
    """The toy text-to-speech model: the shipped one, or a folder written by `save` (safetensors only)."""
    from .checkpoint import read_safetensors
    from .errors import CheckpointError
    from .tokenizer import Tokenizer

    folder = Path(folder) if folder is not None else default_folder()
    path = folder / "config.json"
    if not path.exists():
        raise CheckpointError(f"no text-to-speech model in {folder}: expected {path}")
    info = json.loads(path.read_text())
    if info.get("format") != "dsm-lab-tts":
        raise CheckpointError(f"{path}: not a dsm-lab text-to-speech model (format {info.get('format')!r})")
    model = ToyTTS(TTSConfig(**info["config"]))
    tensors = read_safetensors(folder / info["weights"])
    missing = set(model.state_dict()) - set(tensors)
    if missing:
        raise CheckpointError(f"{folder / info['weights']}: missing tensors {sorted(missing)[:5]}")
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    model.tokenizer = Tokenizer(folder / info["tokenizer"])
    model.info = info
    return model.eval()
