"""The batch layout: which arrays a :class:`~textvae.batching.sequence.OneHotSequence` batch
holds, and under which names.

A batch is Keras' ``(x, y)`` or ``(x, y, sample_weight)``. ``x`` is the bare ids array or a dict
of named inputs; ``y`` one bare output or a dict of named outputs; ``sample_weight`` (when asked
for) mirrors ``y``: a bare array, or a dict with the same keys. This module validates a layout
and computes the small arrays a layout needs besides the ids (next-token ids, padding masks),
then assembles a batch (:class:`BatchArrays`, :meth:`BatchLayout.assemble`). A
``target_window`` cuts every token output (and its sample weight) to the last positions of each
row, while the inputs stay whole rows. It imports NumPy only: the one-hot expansion is the
Sequence's (kernel and buffer pool), handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from textvae._checks import (
    INPUT_KINDS,
    OUTPUT_KINDS,
    SAMPLE_WEIGHTS,
    TARGETS,
    int_up_to,
    one_of,
)
from textvae.errors import InvalidArgumentError, StoreMismatchError

__all__ = [
    "BatchArrays",
    "BatchLayout",
    "Default",
    "legacy_outputs",
    "next_token_ids",
    "next_token_mask",
    "padding_mask",
]

#: Output kinds with one value per token position, (batch, max_len[, vocab_size]).
TOKEN_KINDS = ("onehot", "sparse", "next_onehot", "next_sparse")
#: Output kinds the one-hot kernel expands (through the buffer pool).
ONEHOT_KINDS = ("onehot", "next_onehot")
#: Output kinds whose target at position t is the id at t + 1.
NEXT_KINDS = ("next_onehot", "next_sparse")
#: Output kinds read from the store's labels.
LABEL_KINDS = ("binary", "classes")


class Default:
    """A keyword's default, told apart from the same value passed on purpose.

    Its repr is the value's, so a signature reads as usual (``targets='onehot'``) while the code
    can tell whether the caller gave the argument (``isinstance(targets, Default)``).
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _name(argument: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(
            f"`{argument}` names must be non-empty strings (the model's layer names). "
            f"Received: {name!r} in {argument}"
        )
    return name


def _kinds(argument: str, value: Any, choices: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise InvalidArgumentError(
            f"`{argument}` must be a non-empty dict of names to kinds "
            f"({', '.join(map(repr, choices))}). Received: {argument}={value!r}"
        )
    kinds = {}
    for name, kind in value.items():
        _name(argument, name)
        kinds[name] = one_of(f"{argument}[{name!r}]", kind, choices)
    return kinds


@dataclass(frozen=True)
class BatchLayout:
    """What one batch holds (validated at construction).

    Parameters
    ----------
    inputs
        ``None``: ``x`` is the bare int32 ids array (batch, max_len). A name: ``x`` is
        ``{name: ids}``. A dict of names to input kinds: ``"ids"`` or ``"mask"`` (the padding
        mask, float32 (batch, max_len)), e.g. ``{"tokens": "ids", "padding_mask": "mask"}``.
    outputs
        One output kind (``y`` is that bare array) or a dict of names to kinds (``y`` a dict):
        ``"onehot"`` (batch, max_len, vocab_size) in the sequence's dtype; ``"sparse"`` the int32
        ids; ``"next_onehot"`` / ``"next_sparse"`` the next-token targets (target at t is the id
        at t + 1, the pad id at the last position); ``"binary"`` float32 labels (batch, 1);
        ``"classes"`` int32 class ids (batch,).
    sample_weight
        ``None`` (no weights) or ``"mask"``: Keras' third element, keyed like ``y``. Token
        outputs get float32 (batch, max_len), 1.0 where the position holds a real token (for
        next-token outputs: where the position and its target both do); label outputs get
        float32 (batch,), 1.0 for a labelled row, 0.0 for an unlabelled one (label -1).
    target_window
        ``None`` (default): token outputs cover every position. An integer W in
        ``[1, max_len]``: every token output (``"onehot"``, ``"sparse"``, ``"next_onehot"``,
        ``"next_sparse"``) and its sample weight cover only the last W positions of each row,
        columns ``[max_len - W, max_len)``: (batch, W[, vocab_size]), for a model that predicts
        only those (the end of each review under the default ``"pre"`` padding and
        truncation). Inputs stay whole rows. Refused without a token output; checked against
        the store's ``max_len`` by :meth:`check_target_window`.
    """

    inputs: str | Mapping[str, str] | None = None
    outputs: str | Mapping[str, str] = "onehot"
    sample_weight: str | None = None
    target_window: int | None = None

    def __post_init__(self) -> None:
        inputs = self.inputs
        if isinstance(inputs, str):
            _name("inputs", inputs)
        elif inputs is not None:
            if not isinstance(inputs, Mapping):
                raise InvalidArgumentError(
                    "`inputs` must be None (the bare ids array), an input name, or a dict of "
                    f"input names to kinds ({', '.join(map(repr, INPUT_KINDS))}). "
                    f"Received: inputs={inputs!r}"
                )
            object.__setattr__(self, "inputs", _kinds("inputs", inputs, INPUT_KINDS))
        if isinstance(self.outputs, str):
            one_of("outputs", self.outputs, OUTPUT_KINDS)
        else:
            object.__setattr__(self, "outputs", _kinds("outputs", self.outputs, OUTPUT_KINDS))
        if self.sample_weight is not None:
            one_of("sample_weight", self.sample_weight, (*SAMPLE_WEIGHTS, None))
        window = int_up_to(
            "target_window", self.target_window, None, bound="max_len", allow_none=True
        )
        object.__setattr__(self, "target_window", window)
        if window is not None and not self.token_outputs:
            raise InvalidArgumentError(
                "`target_window` cuts token outputs "
                f"({', '.join(map(repr, TOKEN_KINDS))}) to their last positions; outputs "
                f"{self.outputs!r} have none: leave it out. Received: target_window={window}"
            )

    # -- what a layout needs ------------------------------------------------------------------
    @property
    def output_kinds(self) -> tuple[str, ...]:
        """The kind of every output, in order."""
        return (self.outputs,) if isinstance(self.outputs, str) else tuple(self.outputs.values())

    @property
    def input_kinds(self) -> tuple[str, ...]:
        """The kind of every input, in order."""
        if isinstance(self.inputs, Mapping):
            return tuple(self.inputs.values())
        return ("ids",)

    @property
    def token_outputs(self) -> int:
        """How many outputs have one value per token position (the ones ``target_window``
        cuts)."""
        return sum(kind in TOKEN_KINDS for kind in self.output_kinds)

    @property
    def onehot_outputs(self) -> int:
        """How many one-hot arrays a batch holds (each a buffer of the pool)."""
        return sum(kind in ONEHOT_KINDS for kind in self.output_kinds)

    @property
    def needs_labels(self) -> bool:
        """Whether an output reads the store's labels (``"binary"`` or ``"classes"``)."""
        return any(kind in LABEL_KINDS for kind in self.output_kinds)

    @property
    def needs_lengths(self) -> bool:
        """Whether the batch needs the stored lengths (a padding mask, as input or weight)."""
        return self.sample_weight is not None or "mask" in self.input_kinds

    def label_kinds(self) -> tuple[str, ...]:
        """The label kinds among the outputs, in output order."""
        return tuple(kind for kind in self.output_kinds if kind in LABEL_KINDS)

    def check_labels(self, store: Any, split: str) -> None:
        """Refuse label outputs that ``store`` (a :class:`~textvae.data.store.TokenStore`)
        cannot give (format-1 stores are binary)."""
        if not self.needs_labels:
            return
        if not store.has_labels:
            raise StoreMismatchError(
                f"outputs {self.outputs!r} ask for labels, but the store {store.path} has none "
                f"(split {split!r}): leave out the 'binary' and 'classes' outputs, or build the "
                "store with labels"
            )
        if "binary" in self.label_kinds() and store.num_classes != 2:
            raise StoreMismatchError(
                f"a 'binary' output needs a store with 2 classes; {store.path} has "
                f"num_classes={store.num_classes}: use 'classes' (int32 class ids, for "
                "sparse_categorical_crossentropy)"
            )

    def check_target_window(self, max_len: int) -> None:
        """Refuse a ``target_window`` longer than the store's rows (``max_len``)."""
        int_up_to("target_window", self.target_window, max_len, bound="max_len", allow_none=True)

    def target_positions(self, max_len: int) -> int:
        """Positions of every token output of a batch: ``target_window``, or ``max_len``."""
        return max_len if self.target_window is None else self.target_window

    def assemble(self, arrays: BatchArrays) -> tuple:
        """Keras' ``(x, y)`` or ``(x, y, sample_weight)`` of one batch, from its arrays."""
        if isinstance(self.inputs, str):
            x: Any = {self.inputs: arrays.ids}
        elif self.inputs is None:
            x = arrays.ids
        else:
            x = {name: arrays.input(kind) for name, kind in self.inputs.items()}
        if isinstance(self.outputs, str):
            y: Any = arrays.output(self.outputs)
            if self.sample_weight is None:
                return x, y
            return x, y, arrays.weight(self.outputs)
        y = {name: arrays.output(kind) for name, kind in self.outputs.items()}
        if self.sample_weight is None:
            return x, y
        return x, y, {name: arrays.weight(kind) for name, kind in self.outputs.items()}

    def describe(self) -> str:
        """The layout as ``repr`` shows it."""
        parts = [f"outputs={self.outputs!r}"]
        if self.inputs is not None:
            parts.insert(0, f"inputs={self.inputs!r}")
        if self.sample_weight is not None:
            parts.append(f"sample_weight={self.sample_weight!r}")
        if self.target_window is not None:
            parts.append(f"target_window={self.target_window}")
        return ", ".join(parts)


def padding_mask(lengths: np.ndarray, max_len: int, padding: str) -> np.ndarray:
    """float32 (rows, max_len): 1.0 at the positions of real tokens, 0.0 at padding.

    ``lengths`` are the stored lengths before padding/truncation: a review longer than
    ``max_len`` was truncated and fills its row. ``padding="pre"`` puts a row's tokens at its
    end, ``"post"`` at its start.
    """
    real = np.minimum(np.asarray(lengths, dtype=np.int64), max_len)[:, None]
    positions = np.arange(max_len)[None, :]
    keep = positions >= max_len - real if padding == "pre" else positions < real
    return keep.astype(np.float32)


def next_token_ids(ids: np.ndarray, pad_id: int) -> np.ndarray:
    """int32 (rows, max_len): the id at t + 1 at every position t; ``pad_id`` at the last."""
    out = np.empty(ids.shape, dtype=np.int32)
    out[:, :-1] = ids[:, 1:]
    out[:, -1:] = pad_id
    return out


def next_token_mask(mask: np.ndarray) -> np.ndarray:
    """float32 (rows, max_len) from a :func:`padding_mask`: 1.0 where position t and its target
    t + 1 both hold real tokens (under pre padding the last pad, whose target is the first token,
    is left out: nothing precedes that token)."""
    out = np.zeros_like(mask)
    out[:, :-1] = mask[:, :-1] * mask[:, 1:]
    return out


class BatchArrays:
    """The arrays of one batch, each computed once when a layout first asks for it.

    Parameters
    ----------
    ids
        int32 (rows, max_len): the batch's ids.
    pad_id, padding
        The store's padding id and side (``"pre"`` / ``"post"``).
    onehot
        Expands ids to a one-hot array (the Sequence's kernel and buffer pool).
    lengths, labels
        Read the batch's stored lengths and labels (only when a layout needs them).
    target_window
        ``None``: token outputs and their weights cover whole rows; W: only each row's last W
        positions (a C-contiguous (rows, W) copy; the one-hot expansion gets those ids only).
    """

    def __init__(
        self,
        ids: np.ndarray,
        *,
        pad_id: int,
        onehot: Callable[[np.ndarray], np.ndarray],
        lengths: Callable[[], np.ndarray],
        labels: Callable[[], np.ndarray],
        padding: str,
        target_window: int | None = None,
    ) -> None:
        self.ids = ids
        self._pad_id, self._onehot, self._padding = pad_id, onehot, padding
        self._read_lengths, self._read_labels = lengths, labels
        # First column of the token outputs: 0 (whole rows) without a window.
        self._start = 0 if target_window is None else ids.shape[1] - target_window
        self._next_ids: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._windowed: dict[str, np.ndarray] = {}

    def next_ids(self) -> np.ndarray:
        if self._next_ids is None:
            self._next_ids = next_token_ids(self.ids, self._pad_id)
        return self._next_ids

    def mask(self) -> np.ndarray:
        if self._mask is None:
            self._mask = padding_mask(self._read_lengths(), self.ids.shape[1], self._padding)
        return self._mask

    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = self._read_labels()
        return self._labels

    def _window(self, key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """``make()`` cut to the target window's columns (itself without a window), once per
        batch: a contiguous copy, so the kernel reads just the window's ids and the arrays
        hand over to TensorFlow without another copy."""
        if self._start == 0:
            return make()
        if key not in self._windowed:
            self._windowed[key] = np.ascontiguousarray(make()[:, self._start :])
        return self._windowed[key]

    def input(self, kind: str) -> np.ndarray:
        return self.ids if kind == "ids" else self.mask()

    def output(self, kind: str) -> np.ndarray:
        if kind == "onehot":
            return self._onehot(self._window("ids", lambda: self.ids))
        if kind == "sparse":
            return self._window("ids", lambda: self.ids)
        if kind == "next_onehot":
            return self._onehot(self._window("next_ids", self.next_ids))
        if kind == "next_sparse":
            return self._window("next_ids", self.next_ids)
        if kind == "binary":
            return self.labels().astype(np.float32).reshape(-1, 1)
        return self.labels().astype(np.int32)  # "classes"

    def weight(self, kind: str) -> np.ndarray:
        if kind in NEXT_KINDS:
            # The next-token mask of whole rows, then cut: its last column needs the row's end.
            return self._window("next_mask", lambda: next_token_mask(self.mask()))
        if kind in TOKEN_KINDS:
            return self._window("mask", self.mask)
        return (self.labels() >= 0).astype(np.float32)


def legacy_outputs(
    outputs: Any, targets: Any, reconstruction_name: Any, sentiment_name: Any
) -> tuple[str | None, str | None, str | None, Any]:
    """``(targets, reconstruction_name, sentiment_name, outputs)``: the older arguments mapped
    onto ``outputs`` (``{reconstruction_name: targets, sentiment_name: "binary"}``) when it is
    not given; refused beside it."""
    given = [
        name
        for name, value in (
            ("targets", targets),
            ("reconstruction_name", reconstruction_name),
            ("sentiment_name", sentiment_name),
        )
        if not isinstance(value, Default)
    ]
    if outputs is not None:
        if given:
            raise InvalidArgumentError(
                f"pass `outputs` or {', '.join(f'`{g}`' for g in given)}, not both: `outputs` "
                "names every output and its kind, e.g. outputs={'reconstruction': 'onehot', "
                "'sentiment': 'binary'}"
            )
        return None, None, None, outputs
    targets, reconstruction_name, sentiment_name = (
        v.value if isinstance(v, Default) else v
        for v in (targets, reconstruction_name, sentiment_name)
    )
    one_of("targets", targets, TARGETS)
    if reconstruction_name is None and sentiment_name is None:
        raise InvalidArgumentError(
            "at least one of `reconstruction_name` and `sentiment_name` must be given"
        )
    if reconstruction_name is not None and reconstruction_name == sentiment_name:
        raise InvalidArgumentError(
            "`reconstruction_name` and `sentiment_name` must differ (they key one dict). "
            f"Received: both {reconstruction_name!r}"
        )
    legacy = {reconstruction_name: targets, sentiment_name: "binary"}
    return (
        targets,
        reconstruction_name,
        sentiment_name,
        {name: kind for name, kind in legacy.items() if name is not None},
    )
