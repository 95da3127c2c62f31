"""`transferlab.pretraining.data`: exact blocks from `split_contiguous` on hand-made texts, the
exact splits, source, fingerprint and error messages of `read_corpora`, and `from_task`
taking a task's train and validation inputs without ever reading its test split. Pure Python:
no torch, no network, no real data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from transferlab.api import Split, Task
from transferlab.errors import DataError, ParamError
from transferlab.pretraining.data import (
    UnlabeledData,
    from_task,
    read_corpora,
    split_contiguous,
)

# --- split_contiguous ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fractions", "blocks"), [
    # target 0.5 * 8 = 4 is a line start (the "\n" before it sits at 3 = target - 1):
    # the cut falls exactly on the target.
    ("abc\ndef\n", (0.5, 0.5), ("abc\n", "def\n")),
    # target 0.4 * 10 = 4 is one character past the line start 3 (the "\n" at 2 is
    # target - 2): the cut moves on to the next line start, 8, never back to 3.
    ("ab\ncdef\ng\n", (0.4, 0.6), ("ab\ncdef\n", "g\n")),
    # target 0.25 * 4 = 1 is a line start because the text opens with "\n" (found at 0):
    # the cut is 1, not the end of the text.
    ("\nab\n", (0.25, 0.75), ("\n", "ab\n")),
    # a zero fraction is allowed and gives an empty block: 0.5 * 6 = 3 is a line start, and
    # the second target, max(3, round(0.5 * 6)) = 3, cuts there again.
    ("ab\ncd\n", (0.5, 0.0, 0.5), ("ab\n", "", "cd\n")),
])
def test_split_contiguous_cuts_at_the_first_line_start_at_or_after_each_target(
        text, fractions, blocks):
    """Bugs caught: searching for the line break from the target itself or two characters
    before it (cuts one line late or one line early), skipping a line break at the very
    first character (``newline <= 0`` / ``< 1``, or starting the search at 1) so the whole
    text lands in the first block, treating a target of 1 like a target of 0, and rejecting
    a zero fraction (``f <= 0``)."""
    assert split_contiguous(text, fractions) == blocks
    assert "".join(blocks) == text


def test_split_contiguous_cuts_at_zero_when_the_first_target_is_zero():
    """Bugs caught: a leading fraction of 0 (or one that rounds to 0 characters) taking the
    entire text instead of none of it, and the first search starting at 1 instead of 0
    (``start = 1`` would cut after the first line, giving ("a\\n", "b\\n"))."""
    # 0.0 * 4 = 0 and round(0.1 * 4) = round(0.4) = 0: the first line start >= 0 is 0.
    assert split_contiguous("a\nb\n", (0.0, 1.0)) == ("", "a\nb\n")
    assert split_contiguous("a\nb\n", (0.1, 0.9)) == ("", "a\nb\n")


# --- read_corpora -------------------------------------------------------------------------


def test_read_corpora_lists_exact_blocks_source_and_fingerprint(tmp_path):
    """Bugs caught: a fingerprint that drops the split fractions from its hash, or is cut to
    another length than 16 hex digits (a stored run would name other data than it saw, and
    runs stored before would stop matching), a source that is not ``corpus:A+B``, and
    whitespace-only blocks listed as documents."""
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    # 10 lines of 3 characters ("é", a digit, "\n"): 30 characters, "\n" at 3i + 2.
    # Cut 1: target 0.8 * 30 = 24, the "\n" at 23 -> cut 24 (8 lines).
    # Cut 2: target (0.8 + 0.1) * 30 = 27, the "\n" at 26 -> cut 27 (1 line); 1 line left.
    first_text = "".join(f"é{i}\n" for i in range(10))
    first.write_text(first_text, encoding="utf-8")
    # "x\n": targets round(0.8 * 2) = 2 and max(2, round(0.9 * 2)) = 2, both at the end, so
    # only a train block; the empty validation and test blocks are not listed.
    second.write_text("x\n", encoding="utf-8")

    data = read_corpora([first, str(second)])

    lines = [f"é{i}\n" for i in range(10)]
    assert data == UnlabeledData(
        "text",
        {"train": ["".join(lines[:8]), "x\n"], "validation": [lines[8]], "test": [lines[9]]},
        "corpus:a.txt+b.txt",
        data.fingerprint,
    )
    # The fingerprint, recomputed by its definition: sha256 over repr(SPLIT_FRACTIONS), then
    # each file's own sha256 digest in order, as the first 16 hex digits.
    digest = hashlib.sha256(b"(0.8, 0.1, 0.1)")
    for text in (first_text, "x\n"):
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    assert data.fingerprint == digest.hexdigest()[:16]
    assert len(data.fingerprint) == 16
    assert data.split("validation") == [lines[8]]


def test_read_corpora_decodes_utf8_whatever_the_locale_encoding(tmp_path, monkeypatch):
    """Bug caught: reading the corpus in the locale's encoding (``encoding=None``), which
    garbles every non-ASCII character on a machine whose locale is not UTF-8 (Windows'
    cp1252, a latin-1 server). Such a locale is simulated by making ``Path.read_text`` fall
    back to latin-1 when no encoding is named."""
    real_read_text = Path.read_text

    def read_text_under_latin1_locale(self, encoding=None, errors=None):
        return real_read_text(self, encoding="latin-1" if encoding is None else encoding,
                              errors=errors)

    monkeypatch.setattr(Path, "read_text", read_text_under_latin1_locale)
    corpus = tmp_path / "accents.txt"
    accented = "café \u2013 naïve\n"  # an en dash and two accented letters
    corpus.write_bytes(accented.encode("utf-8"))
    # 13 characters: target round(0.8 * 13) = round(10.4) = 10, the only "\n" at 12 -> the
    # cut is the end of the text, so the whole line is the one train block.
    data = read_corpora([corpus])
    assert data.splits == {"train": [accented], "validation": [], "test": []}


def test_read_corpora_error_messages_name_the_file_and_the_fix(tmp_path):
    """Bugs caught: any change to the one-line messages the CLI prints for a missing corpus,
    a corpus that is not UTF-8 (with the reason and the byte offset), an empty corpus, and no
    corpus at all (compared in full, so a truncated or altered message fails)."""
    missing = tmp_path / "missing.txt"
    with pytest.raises(DataError) as caught:
        read_corpora([missing])
    assert str(caught.value) == (f"corpus {missing} does not exist; pass an existing UTF-8"
                                 " text file to --corpus")

    # "ok\n" is bytes 0..2, so the invalid start byte 0xff is at byte 3.
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"ok\n\xff\xfe\xfa\n")
    with pytest.raises(DataError) as caught:
        read_corpora([binary])
    assert str(caught.value) == (f"corpus {binary} is not UTF-8 text (invalid start byte at"
                                 " byte 3); convert it with iconv -t utf-8")

    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\t\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_corpora([blank])
    assert str(caught.value) == f"corpus {blank} is empty; pass a file with text in it"

    with pytest.raises(ParamError) as caught:
        read_corpora([])
    assert str(caught.value) == "no corpus given; pass --corpus FILE (repeatable) or -t TASK"


# --- from_task ----------------------------------------------------------------------------


class _InCodeTask(Task):
    """A task built from in-code inputs whose test split must never be loaded."""

    label_names = ["a", "b"]

    def __init__(self, name: str, modality: str, inputs: dict[str, tuple[str, ...]]) -> None:
        super().__init__(name)
        self.modality = modality
        self._inputs = inputs

    def split_names(self) -> list[str]:
        return list(self._inputs)

    def _load_split(self, split: str) -> Split:
        if split == "test":
            raise AssertionError("pretraining read the task's test split")
        return Split(self._inputs[split], [0] * len(self._inputs[split]))

    def fingerprint(self) -> str:  # the default would load every split, test included
        return f"{self.name}:fixed-fingerprint"


def test_from_task_takes_train_and_val_inputs_and_never_the_test_split():
    """Bugs caught: test inputs leaking into pretraining, the validation inputs dropped or
    filed under another key than ``validation``, train inputs filed under another key, the
    modality, source (``task:NAME``) or fingerprint not taken from the task, and
    ``split`` answering ``None`` instead of ``[]`` for a split the data lacks."""
    task = _InCodeTask("reviews", "text", {"train": ("good film", "bad film"),
                                            "val": ("fine film",), "test": ("secret",)})
    data = from_task(task)
    assert data == UnlabeledData("text", {"train": ["good film", "bad film"],
                                          "validation": ["fine film"]},
                                 "task:reviews", "reviews:fixed-fingerprint")
    assert data.split("train") == ["good film", "bad film"]
    assert data.split("test") == []


def test_from_task_without_a_val_split_gives_train_inputs_only():
    """Bugs caught: the ``"val" in split_names()`` check inverted or misspelt (a task
    without a val split would fail, or one with it would lose its validation inputs), and
    the modality hard-coded to text."""
    task = _InCodeTask("photos", "image", {"train": ("a.png", "b.png", "c.png"),
                                           "test": ("secret.png",)})
    data = from_task(task)
    assert data == UnlabeledData("image", {"train": ["a.png", "b.png", "c.png"]},
                                 "task:photos", "photos:fixed-fingerprint")
    assert data.split("validation") == []
    assert data.split("test") == []
