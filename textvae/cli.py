"""Console entry points: argument parsing and console output only.

Each ``*_main(argv=None) -> int`` builds a config, calls one library function, and turns a
:class:`~textvae.errors.TextVAEError` into one line on stderr and exit code 2. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import textvae
from textvae._options import Flag, add_flag, add_flags, build, flag, flatten, parse_given
from textvae._startup import SHOW_BACKEND_LOG_HELP, import_keras
from textvae.config import PRESETS, IngestConfig, TrainConfig, storage_options_flag
from textvae.data.location import check_storage_options
from textvae.errors import TrainingInterrupted, unwrap
from textvae.model.config import RECONSTRUCTION, SAMPLED
from textvae.progress import ConsoleProgress

__all__ = ["ingest_main", "sample_main", "train_main", "verify_main"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
#: The default decoding of ``textvae-sample reconstruct`` (False) and ``prior|interpolate`` (True).
_DEFAULTS = {False: RECONSTRUCTION, True: SAMPLED}

#: The most lines ``textvae-sample prior --n`` / ``interpolate --steps`` decode and print.
MAX_SAMPLE_LINES = 100_000

T = TypeVar("T")

#: ``--show-backend-log``: a flag of the commands that import Keras, not a training setting.
SHOW_BACKEND_LOG = Flag(
    "show_backend_log", False, flag(help=SHOW_BACKEND_LOG_HELP, group="output"), bool
)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _lines_as_they_come() -> None:
    """Make stdout line-buffered, also into a file or a pipe: a log followed with ``tail -f``
    shows each progress line when it is printed (not 8 kB later), in order with stderr's."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):  # a closed or unusual stream: leave it
            reconfigure(line_buffering=True)


def _run(fn: Callable[[], int]) -> int:
    """``fn()``; a textvae error, raised directly or wrapped by an input pipeline (a ``tf.data``
    error, a worker's re-raise: :func:`textvae.errors.unwrap`), is one line and exit code 2."""
    try:
        return fn()
    except Exception as err:
        found = unwrap(err)
        if found is None:
            raise  # a bug: its traceback is kept
        print(f"error: {_one_line(found) or type(found).__name__}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TrainingInterrupted as err:  # a KeyboardInterrupt: not an `Exception`
        # Saved and stopped on a signal: exit as the signal would have, 128 + its number
        # (143 for SIGTERM, 130 for SIGINT), the line saying how to continue.
        print(f"interrupted: {err}", file=sys.stderr)
        return 128 + int(err.signum)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``PROG: error: ...``), exit code 2:
    the full usage is one ``--help`` away, and one line is what a script's log can show.
    Every command's parser also answers ``--version``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"textvae {textvae.__version__}")

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USER_ERROR, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n"
        )


def _or_usage_error(parser: argparse.ArgumentParser, make: Callable[[], T]) -> T:
    """``make()``, a refused value (``ValueError``) turned into a usage error."""
    try:
        return make()
    except ValueError as err:
        parser.error(str(err))


# -- textvae-ingest --------------------------------------------------------------------------
def _ingest_parser() -> tuple[argparse.ArgumentParser, list[Flag]]:
    parser = _Parser(
        prog="textvae-ingest",
        description="Build a token store (chunked zarr v3) from a labelled review corpus.",
    )
    flags = add_flags(parser, IngestConfig)
    parser.add_argument(
        "--quiet", action="store_true", help="no progress output (default off: progress shown)"
    )
    return parser, flags


def _parse_ingest(argv: Sequence[str] | None) -> tuple[IngestConfig, argparse.Namespace]:
    parser, flags = _ingest_parser()
    args, given = parse_given(parser, flags, argv)
    return _or_usage_error(parser, lambda: build(IngestConfig, given)), args


def ingest_config_from_args(argv: Sequence[str] | None = None) -> IngestConfig:
    """The :class:`~textvae.config.IngestConfig` that ``textvae-ingest ARGS`` runs; a bad value
    is a usage error (one line on stderr, exit code 2)."""
    return _parse_ingest(argv)[0]


def ingest_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-ingest SOURCE STORE --vocab-size N --max-len L``."""
    config, args = _parse_ingest(argv)

    def run() -> int:
        from textvae.data import build_store
        from textvae.data.discover import open_corpus
        from textvae.data.vocab import load_tokenizer

        tokenizer = None if config.tokenizer is None else load_tokenizer(config.tokenizer)
        progress = None if args.quiet else ConsoleProgress()
        start = time.perf_counter()
        corpus = open_corpus(config.source)
        if tokenizer is not None:
            corpus = corpus.with_tokenizer(tokenizer)
        try:
            store = build_store(
                config.store,
                corpus,
                spec=config.spec,
                overwrite=config.overwrite,
                progress=progress,
                storage_options=config.storage_options,
                workers=config.workers,
                scheduler=config.scheduler,
            )
        finally:
            if progress is not None:
                progress.close()
        rows = ", ".join(f"{s} {store.num_rows(s):,}" for s in store.splits)
        print(
            f"wrote {store.path}: {rows} reviews, vocab {store.vocab_size:,}, "
            f"max_len {store.max_len} in {time.perf_counter() - start:.1f} s"
        )
        return 0

    return _run(run)


# -- textvae-train ---------------------------------------------------------------------------
def _read_config_file(parser: argparse.ArgumentParser, file: str) -> dict[str, Any]:
    """The settings of a run's ``config.json`` as flat field names; refused as a usage error."""
    import json

    try:
        with open(file, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError) as err:
        parser.error(f"--config {file}: cannot read it as JSON ({err})")
    if not isinstance(saved, dict):
        parser.error(f"--config {file}: expected a JSON object, as a run's config.json holds")
    saved.pop("store_attrs", None)  # the run folder saves the store's attributes beside them
    try:
        values = flatten(TrainConfig, saved)
        # Checked alone first, so that a bad setting in the file is named as the file's.
        TrainConfig.from_dict({k: v for k, v in values.items() if k != "storage_options"})
    except ValueError as err:
        parser.error(f"--config {file}: {err}")
    return values


def _shown(preset: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in preset.items())


def _train_parser() -> tuple[argparse.ArgumentParser, list[Flag]]:
    parser = _Parser(
        prog="textvae-train",
        description="Train the text VAE from a token store (or a corpus it ingests first).",
        epilog="Without --data, IMDB is taken from $TEXTVAE_IMDB, shared/data/imdb or "
        "../shared/data/imdb, or Keras' cache, else downloaded through keras.datasets. "
        "Settings apply in this order, each over the one before: the defaults, --config, "
        "--preset (or --quick), the other flags.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="start from the settings in FILE, a run's config.json (storage option values are "
        "not saved there: give them again) (default none: the defaults below)",
    )
    presets = parser.add_mutually_exclusive_group()
    presets.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a preset's settings; quick: small, finishes in minutes on a 2-core "
        "CPU: "
        + _shown(PRESETS["quick"])
        + "; gpu: the seed's full size for one H100 under KERAS_BACKEND=jax: "
        + _shown(PRESETS["gpu"])
        + " (default none)",
    )
    presets.add_argument(
        "--quick",
        dest="preset",
        action="store_const",
        const="quick",
        help="the same as --preset quick (default off)",
    )
    return parser, add_flags(parser, TrainConfig, extra=[SHOW_BACKEND_LOG])


def train_config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The :class:`~textvae.config.TrainConfig` that ``textvae-train ARGS`` runs."""
    return _parse_train(argv)[0]


def _parse_train(argv: Sequence[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    parser, flags = _train_parser()
    args, given = parse_given(parser, flags, argv)
    values = {} if args.config is None else _read_config_file(parser, args.config)
    if args.preset is not None:
        values.update(PRESETS[args.preset])
    options = {**(values.get("storage_options") or {}), **given.pop("storage_options", {})}
    values.update(given, storage_options=options or None)
    return _or_usage_error(parser, lambda: TrainConfig.from_dict(values)), args


def _check_before_keras(config: TrainConfig) -> None:
    """What ``train`` would refuse that needs no Keras, refused before Keras is imported (a
    few seconds with TensorFlow): the run folder (in use, holding a run, nothing to resume)
    and a local --data (a missing or mismatched store, a missing corpus)."""
    from textvae.training.cluster import worker_info
    from textvae.training.run import RunDir

    if worker_info()[2]:  # the chief's folder; train() takes the lock and decides
        run = RunDir(config.out)
        run.check_unlocked()
        run.check_startable(config)
    if config.data is not None:  # zarr (about 0.3 s) only for a --data to look at
        from textvae.data.resolve import check_data

        check_data(config.data, vocab_size=config.vocab_size, max_len=config.max_len)


def _next_steps(out: str) -> str:
    """The last line of ``textvae-train``: the picture to look at and the command to try."""
    from textvae.training.run import LATENTS, RunDir

    picture = RunDir(out).file(LATENTS)
    look = f"see {picture}" if picture.exists() else f"{LATENTS} not drawn (see above)"
    return f"done: {look}; next, try: textvae-sample prior {shlex.quote(out)} --n 5"


def train_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-train``: see ``textvae-train --help``."""
    config, args = _parse_train(argv)
    _lines_as_they_come()

    def run() -> int:
        _check_before_keras(config)
        import_keras(show_backend_log=args.show_backend_log)
        from textvae.training import train

        metrics = train(config, progress=ConsoleProgress())
        if not metrics:  # a non-chief worker of a multi-worker run: the chief evaluates
            print("worker finished; the chief writes the results")
            return 0
        whole = ""
        if metrics.get("split_sentiment_accuracy") is not None:
            whole = (
                f" ({metrics['split_sentiment_accuracy']:.3f} on all "
                f"{metrics['split_sentiment_reviews']:,})"
            )
        accuracy = metrics["sentiment_accuracy"]  # None: no labelled review in the split
        sentiment = "n/a (no labelled review)" if accuracy is None else f"{accuracy:.3f}"
        print(
            f"test: sentiment accuracy {sentiment}{whole}, KL "
            f"{metrics['kl']:.2f} nats, {metrics['active_units']}/{metrics['latent']} active "
            f"units, token accuracy {metrics['token_accuracy']:.3f} -> {config.out}/metrics.json"
        )
        print(_next_steps(config.out))
        return 0

    return _run(run)


def _sample_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="textvae-sample",
        description="Use a trained run (the --out folder of textvae-train): print words.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reconstruct", help="encode reviews and decode them back")
    r.add_argument("out", help="the --out folder of a textvae-train run")
    r.add_argument("texts", nargs="+", help="review texts")
    pr = sub.add_parser("prior", help="decode random draws from the prior N(0, I)")
    pr.add_argument("out", help="the --out folder of a textvae-train run")
    pr.add_argument("--n", type=int, default=5, help="how many draws (lines; default 5)")
    pr.add_argument(
        "--seed", type=int, default=0, help="seed of the draws (integer >= 0; default 0)"
    )
    i = sub.add_parser("interpolate", help="decode points between two reviews' latent codes")
    i.add_argument("out", help="the --out folder of a textvae-train run")
    i.add_argument("text_a")
    i.add_argument("text_b")
    i.add_argument(
        "--steps",
        type=int,
        default=5,
        help="points on the line, both ends included (points; default 5)",
    )
    for parser in (r, pr, i):
        parser.add_argument(
            "--checkpoint",
            default="best.keras",
            help="which model of the run: a file in it (default best.keras)",
        )
        sampled = parser is not r
        parser.add_argument(
            "--temperature",
            type=float,
            metavar="X",
            default=None,
            help="0: greedy decoding; above 0: sample, sharper below 1, flatter above "
            f"(softmax temperature; default {_DEFAULTS[sampled]['temperature']})",
        )
        parser.add_argument(
            "--top-p",
            type=float,
            metavar="P",
            default=None,
            help="when sampling, draw from the fewest most probable ids whose probability "
            f"reaches P (nucleus, in (0, 1]; default {_DEFAULTS[sampled]['top_p']})",
        )
        parser.add_argument(
            "--top-k",
            type=int,
            metavar="K",
            default=None,
            help="when sampling, draw among the K most probable ids only (ids; default none: all)",
        )
        parser.add_argument(
            "--allow-oov",
            action="store_true",
            help="let <oov> (any rare word) be generated (default off)",
        )
        parser.add_argument(
            "--verbose",
            type=int,
            choices=(0, 1, 2),
            default=1,
            help="kept for scripts: every level prints the decoded text only; TensorFlow's "
            "start-up lines are --show-backend-log's (level; default 1)",
        )
        add_flag(parser, SHOW_BACKEND_LOG)
    return p


def _check_sample_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad numbers as usage errors (exit 2, one line), before any model is loaded."""
    from textvae._checks import (
        int_at_least,
        int_in_range,
        non_negative,
        path,
        positive_int,
        probability,
    )

    try:
        path("out", args.out)
        if args.temperature is not None:
            non_negative("temperature", args.temperature)
        if args.top_p is not None:
            probability("top_p", args.top_p)
        positive_int("top_k", args.top_k, allow_none=True)
        if args.command == "prior":
            int_in_range("n", args.n, 1, MAX_SAMPLE_LINES + 1)
            int_at_least("seed", args.seed, 0)
        if args.command == "interpolate":
            int_in_range("steps", args.steps, 2, MAX_SAMPLE_LINES + 1)
    except ValueError as err:
        parser.error(str(err))


def sample_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-sample reconstruct|prior|interpolate OUT ...``: print decoded words."""
    parser = _sample_parser()
    args = parser.parse_args(argv)
    _check_sample_args(parser, args)

    def run() -> int:
        from textvae.training.run import RunDir

        RunDir(args.out).check_model_files(args.checkpoint)  # before Keras: seconds sooner
        import_keras(show_backend_log=args.show_backend_log)
        from textvae.training import sample

        model, vocab, padding, truncating = sample.load_run(args.out, args.checkpoint)
        given = {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k}
        # Flags not given keep the command's default decoding (sample.reconstruct / prior).
        decoding = {name: value for name, value in given.items() if value is not None}
        decoding["allow_oov"] = args.allow_oov
        if args.command == "reconstruct":
            for text, decoded in zip(
                args.texts,
                sample.reconstruct(model, vocab, args.texts, padding, truncating, **decoding),
                strict=True,
            ):
                print(f"input:  {text}\noutput: {decoded}")
        elif args.command == "prior":
            for k, decoded in enumerate(sample.prior(model, vocab, args.n, args.seed, **decoding)):
                print(f"{k}: {decoded}")
        else:
            lines = sample.interpolate(
                model, vocab, args.text_a, args.text_b, args.steps, padding, truncating, **decoding
            )
            for k, decoded in enumerate(lines):
                print(f"{k / max(len(lines) - 1, 1):.2f}: {decoded}")
        return 0

    return _run(run)


# -- textvae-verify --------------------------------------------------------------------------
EXIT_DAMAGED = 1


def _verify_parser() -> tuple[argparse.ArgumentParser, list[Flag]]:
    p = _Parser(
        prog="textvae-verify",
        description="Read every chunk of every array of a token store and check its checksum. "
        f"Exit code 0: no damage; {EXIT_DAMAGED}: damaged chunks (each is listed); "
        f"{EXIT_USER_ERROR}: usage error or no readable store.",
    )
    p.add_argument("store", help="the store: a local path or an s3:// URL")
    options = Flag("storage_options", None, storage_options_flag("an s3:// STORE"), None)
    add_flag(p, options)
    p.add_argument(
        "--quiet", action="store_true", help="no progress output (default off: progress shown)"
    )
    return p, [options]


def verify_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-verify STORE``: list damaged chunks (exit 1) or say the store is sound (0)."""
    parser, flags = _verify_parser()
    args, given = parse_given(parser, flags, argv)
    storage_options = _or_usage_error(
        parser, lambda: check_storage_options(given.get("storage_options"), args.store)
    )

    def run() -> int:
        from textvae.data.verify import verify_store

        progress = None if args.quiet else ConsoleProgress()
        try:
            report = verify_store(args.store, storage_options=storage_options, progress=progress)
        finally:
            if progress is not None:
                progress.close()
        for damage in report.damaged:
            print(f"damaged: {damage}")
        if report.unchecked:
            print(
                f"note: {report.path} has no checksums in {', '.join(report.unchecked)} (written "
                "before textvae stored them): undecodable and missing chunks are found, changed "
                "bytes that still decode are not; `textvae-ingest --overwrite` rebuilds it "
                "with checksums"
            )
        if report.ok:
            print(report.summary())
            return 0
        print(f"error: {report.summary()}", file=sys.stderr)
        return EXIT_DAMAGED

    return _run(run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(ingest_main())
