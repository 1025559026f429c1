"""The vocabulary: tokenizing text, ids of tokens, and padding a review to a row.

Ids follow ``keras.datasets.imdb``: 0 padding, 1 start, 2 out-of-vocabulary, words from 3 in
descending training-set frequency; ``vocab_size`` counts every id, like Keras' ``num_words``.
(Keras' own pre-tokenised ids start words at 4, leaving 3 unused: the Keras reader keeps them.)

Reading corpora is :mod:`textvae.data.corpus`'s job; this module knows nothing of files.
"""

from __future__ import annotations

import collections
import functools
import heapq
import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, overload

from textvae._checks import PADDINGS, int_at_least, one_of
from textvae.errors import InvalidArgumentError

__all__ = [
    "FIRST_WORD_ID",
    "MAX_VOCAB_SIZE",
    "OOV_ID",
    "PAD_ID",
    "RESERVED",
    "START_ID",
    "TOKEN_RE",
    "UNUSED_TOKEN",
    "Vocabulary",
    "check_tokenizer",
    "check_vocab_size",
    "load_tokenizer",
    "pad_row",
    "tokenize",
]

PAD_ID, START_ID, OOV_ID = 0, 1, 2
FIRST_WORD_ID = 3
#: The largest ``vocab_size`` (16,777,216): a store keeps a token for every id and the model an
#: output unit for every id, so a larger one is a typo, and one of 2**32 (what uint32 ids allow)
#: would need hundreds of GB before the first review is read.
MAX_VOCAB_SIZE = 2**24
RESERVED = ("<pad>", "<start>", "<oov>")
#: Token of an id no word has: fills a store's vocabulary up to ``vocab_size`` when the corpus
#: has fewer distinct words, and the ids Keras' word index leaves out (id 3, missing ranks).
UNUSED_TOKEN = "<unused:{id}>"

#: A word (a run of word characters, apostrophes inside it kept) or one other non-space character.
TOKEN_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_BR_RE = re.compile(r"<br\s*/?>")


def tokenize(text: str) -> list[str]:
    """Split a review into lowercase tokens.

    The rule: lowercase the text, replace HTML line breaks (``<br />``, ``<br/>``, ``<br>``) by
    spaces, then take every match of :data:`TOKEN_RE`, which is either

    - a run of word characters (Unicode ``\\w``: letters, digits, underscore) in which single
      ASCII apostrophes between word characters are kept (``don't``, ``it's``, ``rock'n'roll``),
    - or a single character that is neither a word character nor whitespace (``!``, ``.``,
      ``,``, a quote or apostrophe outside a word).

    Whitespace only separates tokens, so every non-space character lands in exactly one token.

    Examples
    --------
    >>> tokenize("It's GREAT!<br /><br />Don't miss it...")
    ["it's", 'great', '!', "don't", 'miss', 'it', '.', '.', '.']
    """
    text = text.lower()
    if "<br" in text:
        text = _BR_RE.sub(" ", text)
    return TOKEN_RE.findall(text)


class _CheckedTokenizer:
    """A user's tokenizer whose every result is checked to be a list (or tuple) of str.

    A class, not a closure, so that it pickles whenever the tokenizer does (worker processes).
    The check costs a few microseconds a review, against tens for tokenizing it.
    """

    def __init__(self, tokenizer: Callable[[str], Sequence[str]]) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> Sequence[str]:
        tokens = self.tokenizer(text)
        if not isinstance(tokens, (list, tuple)) or not set(map(type, tokens)) <= {str}:
            name = getattr(self.tokenizer, "__name__", type(self.tokenizer).__name__)
            shown = repr(tokens)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise InvalidArgumentError(
                f"`tokenizer` must return a list of str tokens. Received: {name}({text[:30]!r}"
                f"{'...' if len(text) > 30 else ''}) returned {shown} (for token ids from your "
                "own tokenizer, use `build_store_from_ids`)"
            )
        return tokens


def check_tokenizer(tokenizer: Any) -> Callable[[str], Sequence[str]]:
    """``tokenizer`` (a callable: text -> list of str tokens) wrapped so that each result is
    checked; :func:`tokenize` itself is returned as is.

    Raises
    ------
    InvalidArgumentError
        ``tokenizer`` is not callable (or, when called, returns something else than str tokens).
    """
    if tokenizer is tokenize or isinstance(tokenizer, _CheckedTokenizer):
        return tokenizer
    if not callable(tokenizer):
        raise InvalidArgumentError(
            "`tokenizer` must be a callable (text -> list of str tokens). "
            f"Received: tokenizer={tokenizer!r}"
        )
    return _CheckedTokenizer(tokenizer)


def load_tokenizer(spec: str) -> Callable[[str], Sequence[str]]:
    """The tokenizer that ``"module:function"`` names (``textvae-ingest --tokenizer``), checked
    as :func:`check_tokenizer` does. ``function`` may be a dotted path (``module:obj.method``).

    Raises
    ------
    InvalidArgumentError
        ``spec`` is not ``module:function``, the module cannot be imported, it has no such
        callable, or the callable cannot take one str and return str tokens (tried once on a
        short text, before any review is read).
    """
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise InvalidArgumentError(
            "`tokenizer` must name a function as module:function (e.g. "
            f"`mypackage.text:split_words`). Received: tokenizer={spec!r}"
        )
    try:
        target: Any = importlib.import_module(module_name.strip())
    except ImportError as err:
        raise InvalidArgumentError(
            f"cannot import the module of tokenizer={spec!r} ({type(err).__name__}: {err}): "
            "check its name and that it is importable (installed, or on PYTHONPATH)"
        ) from None
    for part in attr.strip().split("."):
        if not hasattr(target, part):
            raise InvalidArgumentError(
                f"tokenizer={spec!r}: {target.__name__ if hasattr(target, '__name__') else target}"
                f" has no attribute {part!r}"
            )
        target = getattr(target, part)
    tokenizer = check_tokenizer(target)
    _try_tokenizer(spec, target, tokenizer)
    return tokenizer


#: The text a named tokenizer is tried on at start-up.
_TRIAL_TEXT = "A short review. Good!"


def _try_tokenizer(spec: str, target: Any, tokenizer: Callable[[str], Sequence[str]]) -> None:
    """Refuse, before any review is read, a tokenizer that cannot take one str: its signature
    (when Python can read it) must accept one positional argument, and one call on a short
    text must return str tokens (:class:`_CheckedTokenizer` checks the result)."""
    import inspect

    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin or C callable without one: the call decides
        signature = None
    if signature is not None:
        try:
            signature.bind(_TRIAL_TEXT)
        except TypeError as err:
            raise InvalidArgumentError(
                f"tokenizer={spec!r} must take one argument, the text, and return a list of "
                f"str tokens. Received: a callable with signature {signature} ({err})"
            ) from None
    try:
        tokenizer(_TRIAL_TEXT)
    except InvalidArgumentError:
        raise
    except Exception as err:  # the user's code: any failure is a refusal
        raise InvalidArgumentError(
            f"tokenizer={spec!r} failed on the text {_TRIAL_TEXT!r} "
            f"({type(err).__name__}: {err}): it must take one str and return a list of str tokens"
        ) from None


def check_vocab_size(vocab_size: Any) -> int:
    """Check that ``vocab_size`` counts the reserved ids and at least one word; return it.

    Raises
    ------
    InvalidArgumentError
        ``vocab_size`` is not an integer in [4, 2**24].
    """
    vocab_size = int_at_least(
        "vocab_size",
        vocab_size,
        FIRST_WORD_ID + 1,
        reason="it counts the 3 reserved ids <pad>, <start>, <oov> and at least one word",
    )
    if vocab_size > MAX_VOCAB_SIZE:
        raise InvalidArgumentError(
            f"`vocab_size` must be at most {MAX_VOCAB_SIZE:,} (2**24: every id gets a token in "
            f"the store and an output unit in the model). Received: vocab_size={vocab_size}"
        )
    return vocab_size


def pad_row(ids: Sequence[int], max_len: int, padding: str, truncating: str, out: Any) -> None:
    """Write ``ids`` padded/truncated to ``max_len`` into the zeroed row ``out``.

    The rules of ``keras.utils.pad_sequences``: ``truncating="pre"`` keeps the end of a long
    review, ``"post"`` its start; ``padding="pre"`` puts the padding before the ids, ``"post"``
    after them.

    Parameters
    ----------
    ids
        Token ids of one review.
    max_len
        Length of the row.
    padding, truncating
        ``"pre"`` or ``"post"``.
    out
        An array of ``max_len`` elements filled with the padding id (:data:`PAD_ID`, or a
        store's own ``pad_id``): the positions not written keep it.
    """
    one_of("padding", padding, PADDINGS)
    one_of("truncating", truncating, PADDINGS)
    if len(ids) > max_len:
        ids = ids[-max_len:] if truncating == "pre" else ids[:max_len]
    if padding == "pre":
        out[max_len - len(ids) :] = ids
    else:
        out[: len(ids)] = ids


@dataclass(frozen=True)
class Vocabulary:
    """Token of every id, with Keras' imdb conventions; a read-only sequence of tokens.

    ``vocab[i]`` (and ``tokens[i]``) is the token of id ``i``; ``len(vocab)`` is the number of
    ids; iterating gives the tokens in id order. Ids 0, 1, 2 are ``<pad>``, ``<start>``,
    ``<oov>`` (:data:`RESERVED`), words start at :data:`FIRST_WORD_ID`.
    """

    tokens: tuple[str, ...] = field(repr=False)
    #: The special ids, as every source of a store names them
    #: (:class:`textvae.data.ingest.StoreSource`).
    pad_id: ClassVar[int] = PAD_ID
    start_id: ClassVar[int] = START_ID
    oov_id: ClassVar[int] = OOV_ID

    def __post_init__(self) -> None:
        tokens = tuple(self.tokens)
        object.__setattr__(self, "tokens", tokens)
        if tokens[: len(RESERVED)] != RESERVED:
            raise InvalidArgumentError(
                f"`tokens` must start with {RESERVED}. Received: {tokens[: len(RESERVED)]}"
            )
        if len(set(tokens)) != len(tokens):
            seen: set[str] = set()
            for i, token in enumerate(tokens):
                if token in seen:
                    raise InvalidArgumentError(
                        f"`tokens` must be unique. Token {token!r} repeats at id {i}"
                    )
                seen.add(token)

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.tokens[:6])
        more = ", ..." if self.size > 6 else ""
        return f"Vocabulary(size={self.size}, tokens=({head}{more}))"

    # -- a sequence of tokens -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tokens)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...
    def __getitem__(self, i: int | slice) -> str | tuple[str, ...]:
        return self.tokens[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._all

    @functools.cached_property
    def _all(self) -> frozenset[str]:
        return frozenset(self.tokens)

    @property
    def size(self) -> int:
        """Number of ids, reserved ones included."""
        return len(self.tokens)

    @classmethod
    def from_counts(
        cls, counts: collections.Counter[str] | Mapping[str, int], vocab_size: int
    ) -> Vocabulary:
        """Keep the ``vocab_size - 3`` most frequent words.

        Words are ordered by descending count, ties by the token string ascending, so the result
        does not depend on the order of ``counts``. With fewer distinct words than that the
        vocabulary is smaller: its size is 3 plus the number of words.
        """
        vocab_size = check_vocab_size(vocab_size)
        words = (
            (word, count) for word, count in counts.items() if count > 0 and word not in RESERVED
        )
        top = heapq.nsmallest(vocab_size - FIRST_WORD_ID, words, key=lambda wc: (-wc[1], wc[0]))
        return cls(RESERVED + tuple(word for word, _ in top))

    @classmethod
    def from_word_index(cls, word_index: Mapping[str, int], vocab_size: int) -> Vocabulary:
        """Vocabulary of Keras' ``imdb_word_index.json`` (word -> rank, ``the`` = 1).

        The word of rank ``r`` gets id ``r + 3``, as ``keras.datasets.imdb.load_data`` numbers
        it (``the`` is 4); ids ``>= vocab_size`` are dropped, so at most ``vocab_size - 4``
        words are kept, like Keras' ``num_words``. Id 3 and any rank missing from the index get
        the placeholder :data:`UNUSED_TOKEN` (Keras leaves id 3 unused too).
        """
        vocab_size = check_vocab_size(vocab_size)
        by_id: dict[int, str] = {}
        for word, rank in word_index.items():
            if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
                raise InvalidArgumentError(
                    f"word index ranks must be integers >= 1. Received: {word!r} -> {rank!r}"
                )
            i = rank + FIRST_WORD_ID
            if i < vocab_size:
                if i in by_id:
                    raise InvalidArgumentError(
                        f"word index gives rank {rank} to both {by_id[i]!r} and {word!r}"
                    )
                by_id[i] = word
        n = max(by_id, default=FIRST_WORD_ID - 1) + 1
        words = tuple(by_id.get(i, UNUSED_TOKEN.format(id=i)) for i in range(FIRST_WORD_ID, n))
        return cls(RESERVED + words)

    def padded(self, vocab_size: int) -> Vocabulary:
        """This vocabulary filled up to ``vocab_size`` ids with :data:`UNUSED_TOKEN`s.

        Raises
        ------
        ValueError
            The vocabulary already has more than ``vocab_size`` ids.
        """
        vocab_size = check_vocab_size(vocab_size)
        if self.size > vocab_size:
            raise InvalidArgumentError(
                f"the vocabulary has {self.size} ids, more than vocab_size={vocab_size}"
            )
        if self.size == vocab_size:
            return self
        fill = tuple(UNUSED_TOKEN.format(id=i) for i in range(self.size, vocab_size))
        return Vocabulary(self.tokens + fill)

    def index(self) -> dict[str, int]:
        """Word -> id (ids >= 3; the reserved names are not words). Built once and cached: do
        not modify the returned dict."""
        return self._index

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        # Reserved names are not words: a text token "<pad>" must encode as OOV, not as padding.
        return {token: i for i, token in enumerate(self.tokens) if i >= FIRST_WORD_ID}

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """``[START_ID]`` followed by the id of every token; unknown tokens get ``OOV_ID``."""
        get = self._index.get
        ids = [START_ID]
        ids.extend([get(token, OOV_ID) for token in tokens])
        return ids

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> list[str]:
        """Tokens of ``ids``. ``skip_special`` drops padding and start ids (``<oov>`` is kept:
        it stands for a word)."""
        out = []
        size = self.size
        for pos, i in enumerate(ids):
            i = int(i)
            if not 0 <= i < size:
                raise InvalidArgumentError(
                    f"id out of range [0, {size}) at position {pos}. Received: {i}"
                )
            if skip_special and i in (PAD_ID, START_ID):
                continue
            out.append(self.tokens[i])
        return out
