"""Text tokens for DSM: a sentencepiece model plus the two special ids of the text stream.

PAD (id 3) says "nothing new on this frame"; EPAD (id 0) says "a word starts on the next frame". Any other
id is a sentencepiece piece; a piece that begins with "▁" starts a word. `WordAssembler` turns one stream's
tokens back into timed words, the way a live transcript sees them, with Kyutai's server's timing rule.
"""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

from .events import Word, WordEnd

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
    """Collects one stream's pieces into words, timed by Kyutai's rule (moshi-server, moshi-core asr.rs).

    The text stream marks where words *start*: EPAD at step k says "a word starts at the next step", and the
    model writes nothing that marks where a word ends. Kyutai's server therefore dates an EPAD at step k as
    (k + 1) / 12.5 - delay, starts a word at the EPAD before it and ends it at the next EPAD (its `EndWord`
    message). We do the same: a word is delivered (`Word`, end_s None) when the next token is not a
    continuation piece, and its `WordEnd` comes with the next EPAD. A word's end is thus the start of what
    the speaker says next: close to the truth inside a sentence, a pause too late before a pause, and
    unknown (None) for the last word of a stream.

    Where the server has nothing to say we name our choice: a word whose pieces directly follow another
    word's (no PAD or EPAD between; the server would merge them) starts at its first piece's step - 1,
    dated as above, and so does a word with no EPAD since the previous one; a word that no EPAD has ended
    when the next word starts ends there (the server would leave it without an end).
    """

    def __init__(self, tokenizer: Tokenizer, frame_rate: float, delay_s: float, stream: int = 0):
        self.tokenizer, self.frame_rate, self.delay_s, self.stream = tokenizer, frame_rate, delay_s, stream
        self.pieces: list[int] = []
        self.start_s = 0.0
        self.last_epad_s: float | None = None  # the EPAD since the last word, if any
        self.unended: list[Word] = []  # delivered words whose end the next EPAD will give

    def date(self, step: int) -> float:
        """Time of the token written at `step`, as the server dates an EPAD there."""
        return round((step + 1) / self.frame_rate - self.delay_s, 4)

    def push(self, step: int, token: int, time_s: float) -> list[Word | WordEnd]:
        """Feed the token of one step; returns the words it completed and the word ends it gave."""
        tok = self.tokenizer
        if tok.is_text(token) and not tok.starts_word(token) and self.pieces:
            self.pieces.append(token)  # continuation of the current word
            return []
        out: list[Word | WordEnd] = []
        done = self.close(step, time_s)
        if done is not None:
            out.append(done)
        if token == tok.epad_id:
            self.last_epad_s = self.date(step)
            out += self._end(self.last_epad_s, time_s)
        if tok.is_text(token):  # a new word (a stray continuation piece also starts one)
            self.pieces = [token]
            self.start_s = self.last_epad_s if self.last_epad_s is not None else self.date(step - 1)
            self.last_epad_s = None
            out += self._end(self.start_s, time_s)  # words no EPAD has ended end where this one starts
        return out

    def _end(self, end_s: float, time_s: float) -> list[WordEnd]:
        ends = [WordEnd(w.text, w.start_s, end_s, round(time_s, 4), self.stream) for w in self.unended]
        self.unended = []
        return ends

    def close(self, step: int, time_s: float) -> Word | None:
        """Deliver the word being assembled, if any (its end still unknown)."""
        if not self.pieces:
            return None
        text = self.tokenizer.decode(self.pieces).strip()
        self.pieces = []
        if not text:
            return None
        word = Word(text, self.start_s, None, round(time_s, 4), self.stream)
        self.unended.append(word)
        return word

    @property
    def partial(self) -> str:
        return self.tokenizer.decode(self.pieces).strip()

    def __repr__(self):
        return f"WordAssembler(partial={self.partial!r}, unended={[w.text for w in self.unended]})"


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
