"""Text tokens for DSM: a sentencepiece model plus the two special ids of the text stream.

PAD (id 3) says "nothing new on this frame"; EPAD (id 0) says "a word starts on the next frame". Any other
id is a sentencepiece piece; a piece that begins with "▁" starts a word. `WordAssembler` turns one stream's
tokens back into timed words, the way a live transcript sees them.
"""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

from .events import Word

WORD_START = "\u2581"  # sentencepiece's word-boundary mark


class Tokenizer:
    def __init__(self, path: str | Path, pad_id: int = 3, epad_id: int = 0):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {path}")
        self.path = path
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(str(path))
        except Exception as e:  # sentencepiece raises a bare OSError/RuntimeError
            raise ValueError(f"cannot read sentencepiece model {path}: {e}") from e
        self.pad_id, self.epad_id = pad_id, epad_id
        self._pieces = [self.sp.IdToPiece(i) for i in range(self.sp.GetPieceSize())]
        self._special = {pad_id, epad_id, self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()}

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def piece(self, token: int) -> str:
        if token == self.pad_id:
            return ""
        if token == self.epad_id:
            return "<epad>"
        if 0 <= token < len(self._pieces):
            return self._pieces[token]
        return f"<{token}>"

    def is_text(self, token: int) -> bool:
        return 0 <= token < len(self._pieces) and token not in self._special

    def starts_word(self, token: int) -> bool:
        return self.is_text(token) and self._pieces[token].startswith(WORD_START)

    def encode_word(self, word: str) -> list[int]:
        return self.sp.EncodeAsIds(word)

    def encode(self, text: str) -> list[int]:
        return self.sp.EncodeAsIds(text)

    def decode(self, tokens: list[int]) -> str:
        return self.sp.DecodeIds([t for t in tokens if self.is_text(t)])


class WordAssembler:
    """Collects one stream's pieces into words with timestamps.

    A word starts with a "▁" piece and is complete when the next token is not a continuation piece
    (PAD, EPAD or a new word). Its times: start = first piece's step / frame_rate - delay, end = the step
    that completed it / frame_rate - delay, emitted = the stream time of that completing step.
    """

    def __init__(self, tokenizer: Tokenizer, frame_rate: float, delay_s: float, stream: int = 0):
        self.tokenizer, self.frame_rate, self.delay_s, self.stream = tokenizer, frame_rate, delay_s, stream
        self.pieces: list[int] = []
        self.first_step = 0

    def _timestamp(self, step: int) -> float:
        return round(step / self.frame_rate - self.delay_s, 4)

    def push(self, step: int, token: int, time_s: float) -> Word | None:
        """Feed the token of one step; returns the word it completed, if any."""
        tok = self.tokenizer
        if tok.is_text(token) and not tok.starts_word(token) and self.pieces:
            self.pieces.append(token)  # continuation of the current word
            return None
        done = self.close(step, time_s)
        if tok.is_text(token):  # a new word (a stray continuation piece also starts one)
            self.pieces, self.first_step = [token], step
        return done

    def close(self, step: int, time_s: float) -> Word | None:
        if not self.pieces:
            return None
        text = self.tokenizer.decode(self.pieces).strip()
        word = Word(text, self._timestamp(self.first_step), self._timestamp(step), round(time_s, 4), self.stream)
        self.pieces = []
        return word if text else None

    @property
    def partial(self) -> str:
        return self.tokenizer.decode(self.pieces).strip()

    def __repr__(self):
        return f"WordAssembler(partial={self.partial!r})"


def train_tokenizer(texts: list[str], out_path: str | Path, vocab_size: int = 1000) -> Path:
    """Train a sentencepiece model with the ids DSM expects: 0 = unk (reused as EPAD), 3 = pad."""
    import io

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.Train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, character_coverage=1.0, hard_vocab_limit=False,
        minloglevel=2, num_threads=1)
    out_path.write_bytes(model.getvalue())
    return out_path
