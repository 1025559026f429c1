"""Tests of textvae.data.vocab: the tokenizer, the vocabulary and the padding rule."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from textvae.data.vocab import (
    FIRST_WORD_ID,
    OOV_ID,
    PAD_ID,
    RESERVED,
    START_ID,
    UNUSED_TOKEN,
    Vocabulary,
    check_vocab_size,
    pad_row,
    tokenize,
)

WORD_INDEX = {"the": 1, "and": 2, "a": 3, "of": 4, "film": 5, "good": 6, "bad": 7}


# --------------------------------------------------------------------------------------------
# Tokenizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello World", ["hello", "world"]),
        ("a<br />b<br/>c<br>d<BR />e", ["a", "b", "c", "d", "e"]),
        ("Wow!!! Great, really.", ["wow", "!", "!", "!", "great", ",", "really", "."]),
        ("Don't, it's rock'n'roll", ["don't", ",", "it's", "rock'n'roll"]),
        ("'quoted' students'", ["'", "quoted", "'", "students", "'"]),
        ("Café NAÏVE über 3.5", ["café", "naïve", "über", "3", ".", "5"]),
        ("日本 映画", ["日本", "映画"]),
        ("   \t\n ", []),
    ],
    ids=[
        "words",
        "br-tags",
        "punctuation",
        "apostrophes",
        "outer-quotes",
        "unicode",
        "cjk",
        "blank",
    ],
)
def test_tokenize_rule(text, expected):
    assert tokenize(text) == expected


@given(st.text())
def test_tokenize_tokens_are_nonempty_and_spaceless(text):
    for token in tokenize(text):
        assert token
        assert not any(ch.isspace() for ch in token)


@given(st.text(alphabet=st.characters(exclude_characters="<")))
def test_tokenize_keeps_every_nonspace_character(text):
    lowered = text.lower()
    assert "".join(tokenize(text)) == "".join(ch for ch in lowered if not ch.isspace())


# --------------------------------------------------------------------------------------------
# Vocabulary


def test_vocabulary_from_counts_orders_by_frequency_then_token():
    counts = collections.Counter({"b": 5, "a": 5, "c": 9, "d": 1, "e": 5})
    vocab = Vocabulary.from_counts(counts, 6)
    assert vocab.tokens == (*RESERVED, "c", "a", "b")  # ties a, b, e broken by string
    assert vocab.size == 6  # vocab_size counts the reserved ids, like Keras' num_words
    assert vocab.tokens.index("<pad>") == PAD_ID == 0
    assert vocab.tokens.index("<start>") == START_ID == 1
    assert vocab.tokens.index("<oov>") == OOV_ID == 2
    assert vocab.index()["c"] == FIRST_WORD_ID == 3
    # reserved names are not words: text that spells them encodes as out-of-vocabulary
    assert "<pad>" not in vocab.index()
    assert vocab.encode(["<pad>", "c"]) == [START_ID, OOV_ID, FIRST_WORD_ID]


def test_vocabulary_smaller_than_vocab_size_when_few_words():
    vocab = Vocabulary.from_counts({"x": 2, "y": 1}, 100)
    assert vocab.tokens == (*RESERVED, "x", "y")
    assert vocab.size == 5


def test_vocabulary_is_independent_of_count_order():
    items = [(f"w{i}", i % 4) for i in range(40)]
    a = Vocabulary.from_counts(dict(items), 20)
    b = Vocabulary.from_counts(dict(reversed(items)), 20)
    assert a == b


@pytest.mark.parametrize("bad", [3, 0, -1, 2.5, True, "10"])
def test_vocabulary_rejects_small_vocab_size(bad):
    with pytest.raises(ValueError, match="vocab_size"):
        Vocabulary.from_counts({"a": 1}, bad)


def test_vocabulary_rejects_bad_tokens():
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(("a", "b", "c"))
    with pytest.raises(ValueError, match="repeats at id 4"):
        Vocabulary((*RESERVED, "a", "a"))


def test_encode_decode_round_trip():
    vocab = Vocabulary.from_counts({"good": 3, "film": 2, "bad": 1}, 5)
    ids = vocab.encode(tokenize("Good film, bad"))
    assert ids == [START_ID, 3, 4, OOV_ID, OOV_ID]
    assert vocab.decode(ids) == ["good", "film", "<oov>", "<oov>"]
    assert vocab.decode([0, 0, *ids], skip_special=False) == [
        "<pad>",
        "<pad>",
        "<start>",
        "good",
        "film",
        "<oov>",
        "<oov>",
    ]
    with pytest.raises(ValueError, match=r"position 1.*Received: 5"):
        vocab.decode([1, 5])


@given(st.lists(st.text(min_size=1, max_size=5), max_size=30))
def test_encode_length_and_round_trip(tokens):
    vocab = Vocabulary.from_counts(collections.Counter(tokens), 10)
    ids = vocab.encode(tokens)
    assert len(ids) == len(tokens) + 1
    assert ids[0] == START_ID
    assert all(0 <= i < vocab.size for i in ids)
    decoded = vocab.decode(ids)
    assert decoded == [t if t in vocab.index() and t not in RESERVED else "<oov>" for t in tokens]


def test_from_word_index_uses_keras_ids():
    # Keras numbers rank r as r + 3: "the" is 4 and id 3 is never used (Keras' "<UNUSED>").
    vocab = Vocabulary.from_word_index(WORD_INDEX, 7)
    assert vocab.tokens == (*RESERVED, "<unused:3>", "the", "and", "a")
    full = Vocabulary.from_word_index(WORD_INDEX, 1000)
    assert full.size == 4 + len(WORD_INDEX)
    assert Vocabulary.from_word_index({"the": 1, "film": 3}, 10).tokens == (
        *RESERVED,
        "<unused:3>",
        "the",
        "<unused:5>",
        "film",
    )
    with pytest.raises(ValueError, match="rank 1"):
        Vocabulary.from_word_index({"the": 1, "a": 1}, 10)


# --------------------------------------------------------------------------------------------
# The vocabulary as a sequence of tokens


def test_vocabulary_is_a_sequence_of_tokens():
    vocab = Vocabulary.from_counts({"good": 3, "film": 2, "bad": 1}, 10)
    assert len(vocab) == vocab.size == 6
    assert vocab[0] == "<pad>" and vocab[3] == "good" and vocab[-1] == "bad"
    assert vocab[:3] == RESERVED
    assert list(vocab) == ["<pad>", "<start>", "<oov>", "good", "film", "bad"]
    assert "film" in vocab and "zebra" not in vocab
    with pytest.raises(IndexError):
        vocab[6]


def test_padded_fills_with_unused_tokens():
    vocab = Vocabulary.from_counts({"x": 2, "y": 1}, 100)
    padded = vocab.padded(8)
    assert list(padded) == [*RESERVED, "x", "y", "<unused:5>", "<unused:6>", "<unused:7>"]
    assert padded[5] == UNUSED_TOKEN.format(id=5)
    assert padded.encode(["y", "<unused:5>"]) == [START_ID, 4, 5]  # ids of real words unchanged
    assert vocab.padded(5) is vocab
    with pytest.raises(ValueError, match="more than vocab_size=4"):
        vocab.padded(4)


@pytest.mark.parametrize("good", [4, 20000, np.int64(7)], ids=["min", "imdb", "numpy"])
def test_check_vocab_size_accepts_and_returns_int(good):
    assert check_vocab_size(good) == int(good)
    assert type(check_vocab_size(good)) is int


@pytest.mark.parametrize("bad", [3, 0, 2.5, True, None], ids=["3", "0", "float", "bool", "none"])
def test_check_vocab_size_message(bad):
    with pytest.raises(ValueError) as info:
        check_vocab_size(bad)
    message = str(info.value)
    assert message.startswith("`vocab_size` must be an integer >= 4 (")
    assert message.endswith(f"Received: vocab_size={bad!r}")


# --------------------------------------------------------------------------------------------
# Padding and truncation (keras.utils.pad_sequences' rules)


@pytest.mark.parametrize(
    ("padding", "truncating", "ids", "expected"),
    [
        ("pre", "pre", [1, 5, 6], [0, 0, 1, 5, 6]),
        ("post", "pre", [1, 5, 6], [1, 5, 6, 0, 0]),
        ("pre", "pre", [1, 5, 6, 7, 8, 9, 10], [6, 7, 8, 9, 10]),
        ("pre", "post", [1, 5, 6, 7, 8, 9, 10], [1, 5, 6, 7, 8]),
        ("post", "post", [1, 5, 6, 7, 8], [1, 5, 6, 7, 8]),
        ("post", "pre", [], [0, 0, 0, 0, 0]),
    ],
    ids=["pad-pre", "pad-post", "cut-pre", "cut-post", "exact", "empty"],
)
def test_pad_row(padding, truncating, ids, expected):
    out = np.zeros(5, dtype=np.int32)
    pad_row(ids, 5, padding, truncating, out)
    assert out.tolist() == expected


@given(
    st.lists(st.integers(1, 99), max_size=20),
    st.integers(1, 12),
    st.sampled_from(["pre", "post"]),
    st.sampled_from(["pre", "post"]),
)
def test_pad_row_matches_keras_pad_sequences_rule(ids, max_len, padding, truncating):
    out = np.zeros(max_len, dtype=np.int32)
    pad_row(ids, max_len, padding, truncating, out)
    kept = ids[-max_len:] if truncating == "pre" else ids[:max_len]
    fill = [PAD_ID] * (max_len - len(kept))
    assert out.tolist() == (fill + kept if padding == "pre" else kept + fill)


@pytest.mark.parametrize("name", ["padding", "truncating"])
def test_pad_row_refuses_unknown_rule(name):
    kwargs = {"padding": "pre", "truncating": "pre", name: "middle"}
    with pytest.raises(ValueError, match=f"`{name}` must be one of 'pre', 'post'"):
        pad_row([1, 2], 4, out=np.zeros(4, np.int32), **kwargs)
