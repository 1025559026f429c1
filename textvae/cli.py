"""Console entry points: argument parsing and console output only.

Each ``*_main(argv=None) -> int`` builds a config, calls one library function, and turns a
:class:`~textvae.errors.TextVAEError` into one line on stderr and exit code 2. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from textvae._checks import DTYPES, PADDINGS, TARGETS
from textvae._startup import LOG_LEVEL_ENV, SHOW_LOGS_VERBOSITY, import_keras
from textvae.config import DEFAULT_CHUNK_ROWS, IngestConfig
from textvae.errors import TextVAEError, TrainingInterrupted
from textvae.progress import ConsoleProgress

__all__ = ["ingest_main", "sample_main", "train_main", "verify_main"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
#: The most lines ``textvae-sample prior --n`` / ``interpolate --steps`` decode and print.
MAX_SAMPLE_LINES = 100_000


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _run(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except TextVAEError as err:
        print(f"error: {_one_line(err) or type(err).__name__}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TrainingInterrupted as err:
        # Saved and stopped on a signal: exit as the signal would have, 128 + its number
        # (143 for SIGTERM, 130 for SIGINT), the line saying how to continue.
        print(f"interrupted: {err}", file=sys.stderr)
        return 128 + int(err.signum)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``PROG: error: ...``), exit code 2:
    the full usage is one ``--help`` away, and one line is what a script's log can show."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USER_ERROR, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n"
        )


# -- options shared by every command that opens a store -------------------------------------
def _add_storage_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--storage-option",
        dest="storage_options",
        metavar="KEY=VALUE",
        type=_storage_option,
        action="append",
        default=None,
        help=f"fsspec option for {what}, repeatable (e.g. endpoint_url=http://host:9000, "
        "anon=true; a JSON VALUE is decoded). Credentials and the endpoint also come from "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE and AWS_ENDPOINT_URL",
    )


def _storage_options(
    parser: argparse.ArgumentParser, pairs: list[tuple[str, object]] | None, *locations: str | None
) -> dict[str, object] | None:
    """The ``--storage-option`` pairs as a dict (None when none was given); refused with a
    usage error unless one of ``locations`` is a URL."""
    if not pairs:
        return None
    from textvae.data.store import is_url

    if not any(loc is not None and is_url(loc) for loc in locations):
        given = " or ".join(repr(loc) for loc in locations if loc is not None) or "nothing"
        parser.error(f"--storage-option applies to a URL store (s3://...), not to {given}")
    return dict(pairs)


def _add_verbose_option(p: argparse.ArgumentParser, default: int | None, what: str) -> None:
    p.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=default,
        help=f"{what}; at {SHOW_LOGS_VERBOSITY} also TensorFlow's start-up log lines, which are "
        f"hidden otherwise (unless {LOG_LEVEL_ENV} is set)",
    )


# -- textvae-ingest --------------------------------------------------------------------------
def _ingest_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="textvae-ingest",
        description="Build a token store (chunked zarr v3) from a labelled review corpus.",
    )
    p.add_argument(
        "source",
        help="aclImdb folder, JSONL/JSONL.gz or CSV file (or a folder with train and test files), "
        "or a Keras imdb.npz",
    )
    p.add_argument("store", help="where to write the store: a local path or an s3:// URL")
    p.add_argument(
        "--vocab",
        type=int,
        default=20000,
        help="vocabulary size, reserved ids 0-2 included (default 20000)",
    )
    p.add_argument(
        "--max-len",
        type=int,
        default=300,
        help="ids per review after padding/truncation (default 300)",
    )
    p.add_argument(
        "--padding",
        choices=PADDINGS,
        default="pre",
        help="where padding goes (default pre, as Keras)",
    )
    p.add_argument(
        "--truncating",
        choices=PADDINGS,
        default="pre",
        help="which end of a long review is cut (default pre: keep the end)",
    )
    p.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows per zarr chunk (default {DEFAULT_CHUNK_ROWS})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing store at STORE")
    p.add_argument(
        "--tokenizer",
        default=None,
        metavar="MODULE:FUNCTION",
        help="your own tokenizer, a function text -> list of str tokens, imported by name "
        "(default: textvae's built-in tokenizer)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that ingest (default: all cores); 1 ingests in this process alone",
    )
    _add_storage_option(p, "an s3:// STORE")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _storage_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value); VALUE is JSON-decoded when it parses (true, 3, {...})."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, received {text!r}")
    try:
        decoded: object = json.loads(value)
    except ValueError:
        decoded = value
    return key.strip(), decoded


def _parse_ingest(argv: Sequence[str] | None) -> tuple[IngestConfig, argparse.Namespace]:
    parser = _ingest_parser()
    args = parser.parse_args(argv)
    try:
        config = IngestConfig(
            source=args.source,
            store=args.store,
            vocab_size=args.vocab,
            max_len=args.max_len,
            padding=args.padding,
            truncating=args.truncating,
            chunk_rows=args.chunk_rows,
            overwrite=args.overwrite,
            storage_options=_storage_options(parser, args.storage_options, args.store),
            tokenizer=args.tokenizer,
            workers=args.workers,
        )
    except ValueError as err:
        parser.error(str(err))
    return config, args


def ingest_config_from_args(argv: Sequence[str] | None = None) -> IngestConfig:
    """The :class:`~textvae.config.IngestConfig` that ``textvae-ingest ARGS`` runs; a bad value
    is a usage error (one line on stderr, exit code 2)."""
    return _parse_ingest(argv)[0]


def ingest_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-ingest SOURCE STORE --vocab N --max-len L``."""
    config, args = _parse_ingest(argv)

    def run() -> int:
        from textvae.data.corpus import open_corpus
        from textvae.data.store import build_store
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
                vocab_size=config.vocab_size,
                max_len=config.max_len,
                padding=config.padding,
                truncating=config.truncating,
                chunk_rows=config.chunk_rows,
                overwrite=config.overwrite,
                progress=progress,
                storage_options=config.storage_options,
                workers=config.workers,
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


def _train_parser() -> argparse.ArgumentParser:
    from textvae._checks import DECODERS
    from textvae.config import QUICK, ModelConfig, TrainConfig

    d, m = TrainConfig(), ModelConfig()
    p = _Parser(
        prog="textvae-train",
        description="Train the text VAE from a token store (or a corpus it ingests first).",
        epilog="Without --data, IMDB is taken from $TEXTVAE_IMDB, shared/data/imdb or "
        "../shared/data/imdb, or Keras' cache, else downloaded through keras.datasets.",
    )
    p.add_argument(
        "--data",
        default=None,
        help="a token store (path or s3:// URL) or a corpus source to ingest first",
    )
    p.add_argument(
        "--store",
        default=None,
        help="where to keep the store ingested from --data (default: a cache folder)",
    )
    _add_storage_option(p, "an s3:// --data or --store")
    p.add_argument("--out", default=d.out, help=f"output directory (default {d.out})")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small preset that finishes in minutes on a 2-core CPU: "
        + ", ".join(f"{k}={v}" for k, v in QUICK.items()),
    )
    p.add_argument(
        "--vocab",
        dest="vocab_size",
        type=int,
        default=None,
        help=f"vocabulary size, reserved ids included (default {d.vocab_size})",
    )
    p.add_argument(
        "--max-len", type=int, default=None, help=f"ids per review (default {d.max_len})"
    )
    p.add_argument("--batch-size", type=int, default=None, help=f"default {d.batch_size}")
    p.add_argument("--epochs", type=int, default=None, help=f"default {d.epochs}")
    p.add_argument(
        "--train-rows",
        type=int,
        default=None,
        help="reviews per epoch (a fresh random subset each epoch; default all)",
    )
    p.add_argument(
        "--eval-rows",
        type=int,
        default=None,
        help="test reviews to evaluate (a random subset; default all)",
    )
    p.add_argument(
        "--targets",
        choices=TARGETS,
        default=None,
        help=f"one-hot targets from the kernels, or integer ids (default {d.targets})",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default=None,
        help=f"one-hot dtype (default {d.dtype})",
    )
    p.add_argument(
        "--workers", type=int, default=None, help=f"batch-building threads (default {d.workers})"
    )
    p.add_argument(
        "--max-queue-size",
        type=int,
        default=None,
        help=f"batches prepared ahead (default {d.max_queue_size})",
    )
    p.add_argument("--embedding-dim", type=int, default=None, help=f"default {m.embedding_dim}")
    p.add_argument("--hidden", type=int, default=None, help=f"LSTM/GRU units (default {m.hidden})")
    p.add_argument("--dense", type=int, default=None, help=f"default {m.dense}")
    p.add_argument("--latent", type=int, default=None, help=f"default {m.latent}")
    p.add_argument(
        "--epsilon-std",
        type=float,
        default=None,
        help=f"sampling noise (default {m.epsilon_std}; the seed used 0.01)",
    )
    p.add_argument(
        "--sentiment-weight", type=float, default=None, help=f"default {m.sentiment_weight}"
    )
    p.add_argument("--free-bits", type=float, default=None, help=f"default {m.free_bits}")
    p.add_argument(
        "--bow-weight",
        type=float,
        default=None,
        help=f"weight of a bag-of-words loss from z (Zhao et al. 2017; default {m.bow_weight})",
    )
    p.add_argument(
        "--decoder",
        choices=DECODERS,
        default=None,
        help=f"autoregressive: reads the review so far and z; repeat: the seed's decoder "
        f"(default {m.decoder})",
    )
    p.add_argument(
        "--word-dropout",
        type=float,
        default=None,
        help=f"share of the decoder's input words replaced by <oov> in training "
        f"(default {m.word_dropout})",
    )
    p.add_argument(
        "--encoder-pooling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"a mean-pooled embedding branch beside the encoder's BiLSTM "
        f"(default {'on' if m.encoder_pooling else 'off'})",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help=f"share of the train split held out to choose best.keras (default {d.val_fraction})",
    )
    p.add_argument("--learning-rate", type=float, default=None, help=f"default {m.learning_rate}")
    p.add_argument(
        "--kl-warmup-epochs",
        type=float,
        default=None,
        help=f"epochs over which the KL weight rises 0 -> 1 (default {d.kl_warmup_epochs})",
    )
    p.add_argument("--seed", type=int, default=None, help=f"default {d.seed}")
    p.add_argument(
        "--checkpoint-steps",
        type=int,
        default=None,
        help="also save the whole training state every N steps, mid-epoch (default "
        f"{d.checkpoint_steps or 'off'}; 0: off)",
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=None,
        help="save the whole training state every M minutes, mid-epoch (default "
        f"{d.checkpoint_minutes:g}; 0: off). SIGTERM/SIGINT save too, then exit with code 130",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (mid-epoch: the next batch)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument(
        "--run-eagerly",
        action="store_true",
        help="run Keras' steps eagerly, without tracing them into a graph (Keras' run_eagerly): "
        "for debugging, and for tiny models, where tracing takes longer than the steps",
    )
    _add_verbose_option(
        p,
        default=None,
        what="Keras' verbosity: 0 silent, 1 progress bar (default), 2 a line per epoch",
    )
    return p


def train_config_from_args(argv: Sequence[str] | None = None):
    """The :class:`~textvae.config.TrainConfig` that ``textvae-train ARGS`` runs."""
    from textvae.config import QUICK, TrainConfig

    parser = _train_parser()
    args = vars(parser.parse_args(argv))
    quick = args.pop("quick")
    args["storage_options"] = _storage_options(
        parser, args["storage_options"], args["data"], args["store"]
    )
    changes = dict(QUICK) if quick else {}
    # store_true: absent means "not given", not False
    flags = ("resume", "overwrite", "run_eagerly")
    changes.update(
        {k: v for k, v in args.items() if v is not None and not (k in flags and v is False)}
    )
    try:
        return TrainConfig().replace(**changes)
    except ValueError as err:
        parser.error(str(err))


def train_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-train``: see ``textvae-train --help``."""
    config = train_config_from_args(argv)

    def run() -> int:
        import_keras(config.verbose)
        from textvae.training.train import train

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
        print(
            f"test: sentiment accuracy {metrics['sentiment_accuracy']:.3f}{whole}, KL "
            f"{metrics['kl']:.2f} nats, {metrics['active_units']}/{metrics['latent']} active "
            f"units, token accuracy {metrics['token_accuracy']:.3f} -> {config.out}/metrics.json"
        )
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
    pr.add_argument("--n", type=int, default=5, help="how many draws (default 5)")
    pr.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("interpolate", help="decode points between two reviews' latent codes")
    i.add_argument("out", help="the --out folder of a textvae-train run")
    i.add_argument("text_a")
    i.add_argument("text_b")
    i.add_argument("--steps", type=int, default=5, help="points on the line (default 5)")
    for parser in (r, pr, i):
        parser.add_argument(
            "--checkpoint", default="best.keras", help="which model of the run (default best.keras)"
        )
        parser.add_argument(
            "--temperature",
            type=float,
            default=0.0,
            help="0 (default): greedy decoding; above 0: sample, sharper below 1, flatter above",
        )
        parser.add_argument(
            "--top-k", type=int, default=None, help="sample among the k most probable ids only"
        )
        _add_verbose_option(parser, default=1, what="0 or 1 (default): the decoded text only")
    return p


def _check_sample_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad numbers as usage errors (exit 2, one line), before any model is loaded."""
    from textvae._checks import int_at_least, int_in_range, non_negative, path, positive_int

    try:
        path("out", args.out)
        non_negative("temperature", args.temperature)
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
        import_keras(args.verbose)
        from textvae.training import sample

        model, vocab, padding, truncating = sample.load_run(args.out, args.checkpoint)
        decoding = {"temperature": args.temperature, "top_k": args.top_k}
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


def _verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="textvae-verify",
        description="Read every chunk of every array of a token store and check its checksum. "
        f"Exit code 0: no damage; {EXIT_DAMAGED}: damaged chunks (each is listed); "
        f"{EXIT_USER_ERROR}: usage error or no readable store.",
    )
    p.add_argument("store", help="the store: a local path or an s3:// URL")
    _add_storage_option(p, "an s3:// STORE")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def verify_main(argv: Sequence[str] | None = None) -> int:
    """``textvae-verify STORE``: list damaged chunks (exit 1) or say the store is sound (0)."""
    parser = _verify_parser()
    args = parser.parse_args(argv)
    storage_options = _storage_options(parser, args.storage_options, args.store)

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
