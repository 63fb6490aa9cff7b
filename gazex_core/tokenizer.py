"""The GazeX tokenizer: a small byte-level BPE (``tokenizers``) for report text plus the special tokens of
:mod:`gazex_core.sequence` (tasks, sections, regions, labels, coordinate bins, dwell bins, frame indices).

Special tokens take ids ``0 .. len(SPECIAL_TOKENS)-1`` in the order ``sequence.SPECIAL_TOKENS`` lists them;
the BPE vocabulary follows. Saved as ``tokenizer.json`` next to the model weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .sequence import PAD, SPECIAL_TOKENS, is_special

TOKENIZER_FILE = "tokenizer.json"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2) -> "GazeXTokenizer":
    """Train byte-level BPE on ``texts``; ``vocab_size`` counts the special tokens too."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return GazeXTokenizer(tok)


class GazeXTokenizer:
    """Items (special-token strings and plain text) <-> token ids."""

    def __init__(self, tokenizer: Tokenizer):
        self.tok = tokenizer
        self.special_ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
        missing = [t for t, i in self.special_ids.items() if i is None]
        if missing:
            raise ValueError(f"tokenizer lacks special tokens {missing[:5]}")
        self.id_to_special = {i: t for t, i in self.special_ids.items()}
        self.pad_id = self.special_ids[PAD]

    # ---- io
    @classmethod
    def from_file(cls, path: str | Path) -> "GazeXTokenizer":
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        return cls(Tokenizer.from_file(str(path)))

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        out = directory / TOKENIZER_FILE
        self.tok.save(str(out))
        return out

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def id(self, special: str) -> int:
        return self.special_ids[special]

    def ids(self, specials: Iterable[str]) -> list[int]:
        return [self.special_ids[s] for s in specials]

    # ---- items <-> ids
    def encode_text(self, text: str) -> list[int]:
        if not text.strip():
            return []
        return [i for i in self.tok.encode(text.strip(), add_special_tokens=False).ids if i not in self.id_to_special]

    def encode(self, items: Iterable[str]) -> list[int]:
        out: list[int] = []
        for it in items:
            if is_special(it):
                out.append(self.special_ids[it])
            else:
                out.extend(self.encode_text(it))
        return out

    def decode_text(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True).strip()

    def decode(self, ids: Iterable[int]) -> list[str]:
        """ids -> items; runs of BPE ids become one text item."""
        items: list[str] = []
        run: list[int] = []
        for i in ids:
            i = int(i)
            if i in self.id_to_special:
                if run:
                    items.append(self.decode_text(run))
                    run = []
                items.append(self.id_to_special[i])
            else:
                run.append(i)
        if run:
            items.append(self.decode_text(run))
        return items
