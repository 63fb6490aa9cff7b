"""The BPE tokenizer: items <-> ids round trip, special tokens atomic, save/load."""

from __future__ import annotations

from gazex_core.sequence import SPECIAL_TOKENS, serialise_report, SentenceBlock, Clue
from gazex_core.tokenizer import GazeXTokenizer, train_tokenizer
from gazex_core.evidence import Box

TEXTS = ["The heart size is normal.", "Small left pleural effusion.", "No pneumothorax.", "Lungs are clear.",
         "Moderate right pleural effusion with adjacent atelectasis.", "Is there a left pleural effusion?"] * 20


def test_items_round_trip(tmp_path):
    tok = train_tokenizer(TEXTS, vocab_size=400, min_frequency=1)
    blocks = [SentenceBlock("findings", "breathing", [Clue(0.3, 0.6, 0.1, 0.1, 700)], Box(0.1, 0.5, 0.4, 0.9),
                            "Pleural Effusion", "Small left pleural effusion."),
              SentenceBlock("impression", None, [], None, None, "Unseen words: pneumoperitoneum 12 mm!")]
    items = serialise_report(blocks)
    ids = tok.encode(items)
    assert tok.decode(ids) == items
    # every special token is one id
    assert all(len(tok.encode([t])) == 1 for t in SPECIAL_TOKENS)
    tok.save(tmp_path)
    again = GazeXTokenizer.from_file(tmp_path)
    assert again.encode(items) == ids and again.vocab_size == tok.vocab_size


def test_shipped_tokenizer_round_trip():
    from gazex_core.inference import DEFAULT_MODEL_DIR

    tok = GazeXTokenizer.from_file(DEFAULT_MODEL_DIR)
    text = "There is a moderate sized left pleural effusion."
    assert tok.decode(tok.encode([text])) == [text]
    assert len(tok.encode([text])) < len(text) / 2  # BPE merges, not characters
