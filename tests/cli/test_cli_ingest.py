"""textvae-ingest: builds a store from each reader; bad sources get one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from textvae.cli import EXIT_USER_ERROR, ingest_config_from_args, ingest_main
from textvae.config import IngestConfig, StoreSpec
from textvae.data.store import TokenStore
from textvae.errors import TextVAEDeprecationWarning


def test_ingest_builds_store(tmp_path, corpus_dir, capsys):
    target = tmp_path / "s.zarr"
    code = ingest_main([str(corpus_dir), str(target), "--vocab", "12", "--max-len", "8"])
    assert code == 0
    out = capsys.readouterr()
    assert "train 37" in out.out and "test 11" in out.out
    store = TokenStore.open(target, vocab_size=12, max_len=8)
    assert store.num_rows("train") == 37
    assert "train" in out.err  # progress went to stderr


def test_ingest_refuses_existing_store(tmp_path, corpus_dir, small_store, capsys):
    before = small_store.read("train", slice(None))
    code = ingest_main([str(corpus_dir), small_store.path, "--vocab", "20"])
    assert code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    np.testing.assert_array_equal(
        TokenStore.open(small_store.path).read("train", slice(None)), before
    )


def _bad_sources(tmp_path):
    missing = tmp_path / "missing"
    latin1 = tmp_path / "latin1" / "x_train.jsonl"
    latin1.parent.mkdir()
    latin1.write_bytes('{"text": "caf\xe9", "label": 1}\n'.encode("latin-1"))
    unlabelled = tmp_path / "nolabel" / "x_train.jsonl"
    unlabelled.parent.mkdir()
    unlabelled.write_text('{"text": "fine film"}\n')
    empty = tmp_path / "empty" / "x_train.jsonl"
    empty.parent.mkdir()
    empty.write_text("")
    return {
        "missing": (missing, "missing"),
        "not-utf8": (latin1, "UTF-8"),
        "no-label": (unlabelled, "label"),
        "empty": (empty, "x_train.jsonl"),
    }


@pytest.mark.parametrize("case", ["missing", "not-utf8", "no-label", "empty"])
def test_bad_source_one_line_no_traceback(tmp_path, case, capsys):
    source, word = _bad_sources(tmp_path)[case]
    target = tmp_path / "out.zarr"
    code = ingest_main([str(source), str(target), "--vocab", "10", "--max-len", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USER_ERROR
    assert len(err) == 1 and err[0].startswith("error: ") and word in err[0]
    assert not target.exists(), "a failed ingest must not leave a store behind"


def test_console_script_exit_code(tmp_path):
    """The installed entry point: no traceback for a user error, exit code 2."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from textvae.cli import ingest_main; sys.exit(ingest_main(sys.argv[1:]))",
            str(tmp_path / "nope"),
            str(tmp_path / "s.zarr"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_USER_ERROR
    assert "Traceback" not in proc.stderr and "does not exist" in proc.stderr
    assert "tensorflow" not in proc.stderr.lower()


# --------------------------------------------------------------------------------------------
# Bad values: a usage error (exit 2, one `error:` line), never a traceback


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--vocab", "3"], "`vocab_size` must be an integer >= 4 ("),
        (["--max-len", "0"], "`max_len` must be a positive integer. Received: max_len=0"),
        (
            ["--chunk-rows", "-5"],
            "`chunk_rows` must be a positive integer. Received: chunk_rows=-5",
        ),
        (["--chunk-rows", "0"], "`chunk_rows` must be a positive integer. Received: chunk_rows=0"),
    ],
    ids=["vocab-3", "max-len-0", "chunk-rows-negative", "chunk-rows-0"],
)
def test_bad_values_are_usage_errors(tmp_path, corpus_dir, capsys, flags, message):
    target = tmp_path / "s.zarr"
    with pytest.raises(SystemExit) as exc:
        ingest_main([str(corpus_dir), str(target), *flags])
    assert exc.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0]
    assert not target.exists()


def test_chunk_rows_default_and_explicit(tmp_path, corpus_dir):
    for name, flags, expected in (("default", [], 1024), ("five", ["--chunk-rows", "5"], 5)):
        target = tmp_path / f"{name}.zarr"
        argv = [str(corpus_dir), str(target), "--vocab", "12", "--max-len", "8", "--quiet"]
        assert ingest_main(argv + flags) == 0
        assert TokenStore.open(target).chunk_rows("train") == expected


def test_unwritable_store_is_one_line(tmp_path, corpus_dir, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = blocker / "s.zarr"
    code = ingest_main([str(corpus_dir), str(target), "--vocab", "12", "--max-len", "8"])
    assert code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write the store at")
    assert str(target) in lines[0] and "choose a STORE path" in lines[0]


def test_config_from_args(tmp_path):
    options = ["--storage-option", "anon=true", "--storage-option", "endpoint_url=http://h:9000"]
    config = ingest_config_from_args(
        ["src", "s3://bucket/s.zarr", "--vocab", "50", "--padding", "post", *options]
    )
    assert config == IngestConfig(
        source="src",
        store="s3://bucket/s.zarr",
        spec=StoreSpec(vocab_size=50, padding="post"),
        storage_options={"anon": True, "endpoint_url": "http://h:9000"},
    )
    assert config.to_dict()["storage_options"] == {"anon": "***", "endpoint_url": "***"}
    assert ingest_config_from_args(["src", "out.zarr"]) == IngestConfig("src", "out.zarr")


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"vocab_size": 3}, "vocab_size"),
        ({"max_len": 0}, "max_len"),
        ({"chunk_rows": 0}, "chunk_rows"),
        ({"chunk_rows": True}, "chunk_rows"),
        ({"padding": "middle"}, "padding"),
        ({"truncating": None}, "truncating"),
    ],
    ids=["vocab", "max-len", "chunk-rows", "chunk-rows-bool", "padding", "truncating"],
)
def test_ingest_config_validates(changes, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        IngestConfig("src", "local.zarr", spec=StoreSpec(**changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"storage_options": {"anon": True}}, "storage options apply to a URL store"),
        ({"spec": 300}, "`spec` must be a StoreSpec"),
        ({"workers": 0}, "`workers`"),
    ],
    ids=["opts", "spec", "workers"],
)
def test_ingest_config_refuses(changes, message):
    with pytest.raises(ValueError, match=message):
        IngestConfig("src", "local.zarr", **changes)


def test_ingest_config_reads_its_spec_and_takes_old_keywords_deprecated():
    config = IngestConfig("src", "out.zarr", spec=StoreSpec(vocab_size=50, chunk_rows=7))
    assert (config.vocab_size, config.max_len, config.chunk_rows) == (50, 300, 7)
    assert (config.padding, config.truncating) == ("pre", "pre")
    with pytest.warns(
        TextVAEDeprecationWarning, match=r"IngestConfig\(vocab_size=\.\.\., chunk_rows="
    ):
        old = IngestConfig("src", "out.zarr", vocab_size=50, chunk_rows=7)
    assert old == config
    with pytest.warns(TextVAEDeprecationWarning), pytest.raises(ValueError, match="`max_len`"):
        IngestConfig("src", "out.zarr", max_len=0)


# --------------------------------------------------------------------------------------------
# --storage-option: one parser for every command that opens a store


def test_train_takes_storage_options(capsys):
    from textvae.cli import train_config_from_args

    config = train_config_from_args(
        ["--data", "s3://b/imdb.zarr", "--storage-option", "anon=true", "--storage-option", "x=1"]
    )
    assert config.storage_options == {"anon": True, "x": 1}
    assert config.to_dict()["storage_options"] == {"anon": "***", "x": "***"}
    assert hash(config) == hash(config.replace(storage_options=None))  # not part of the hash
    local_store = train_config_from_args(
        ["--data", "corpus/", "--store", "s3://b/c.zarr", "--storage-option", "anon=true"]
    )
    assert local_store.storage_options == {"anon": True}
    assert train_config_from_args([]).storage_options is None
    with pytest.raises(SystemExit) as exc:
        train_config_from_args(["--data", "runs/store.zarr", "--storage-option", "anon=true"])
    assert exc.value.code == EXIT_USER_ERROR
    (line,) = capsys.readouterr().err.splitlines()
    assert "storage options apply to a URL store (s3://...), not to 'runs/store.zarr'" in line


_BAD_TOKENIZERS = """
def no_argument():
    return ["a"]

def two_arguments(text, other):
    return text.split()

def keyword_only(*, text):
    return text.split()

def raises(text):
    raise RuntimeError("model not loaded")

def gives_ids(text):
    return [1, 2]

class Tokenizer:
    def __init__(self):
        pass

NOT_CALLABLE = 3

def fine(text, lower=True):
    return text.lower().split() if lower else text.split()
"""


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_argument", "must take one argument, the text.*signature \\(\\)"),
        ("two_arguments", "must take one argument.*signature \\(text, other\\)"),
        ("keyword_only", "must take one argument.*signature \\(\\*, text\\)"),
        ("Tokenizer", "must take one argument.*signature \\(\\)"),
        ("raises", "failed on the text .*RuntimeError: model not loaded"),
        ("gives_ids", "must return a list of str tokens"),
        ("NOT_CALLABLE", "`tokenizer` must be a callable"),
    ],
)
def test_a_tokenizer_that_cannot_take_one_text_is_refused_at_start_up(
    tmp_path, corpus_dir, monkeypatch, capsys, name, message
):
    import re

    (tmp_path / "user_tokenizers.py").write_text(_BAD_TOKENIZERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    target = tmp_path / "s.zarr"
    argv = [str(corpus_dir), str(target), "--vocab", "12", "--quiet"]
    code = ingest_main([*argv, "--tokenizer", f"user_tokenizers:{name}"])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert re.search(message, err), err
    assert not target.exists()
    # The same module's good tokenizer (an optional second argument) builds the store.
    assert ingest_main([*argv, "--tokenizer", "user_tokenizers:fine"]) == 0


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\udc00\\ud800"])
def test_a_lone_surrogate_escape_in_jsonl_is_one_line(tmp_path, capsys, escape):
    # Valid JSON that decodes to a str UTF-8 cannot encode: it crashed writing the vocabulary.
    source = tmp_path / "c_train.jsonl"
    lines = ['{"text": "a good film", "label": 1}', f'{{"text": "bad {escape} plot", "label": 0}}']
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = tmp_path / "s.zarr"
    code = ingest_main([str(source), str(target), "--vocab", "12", "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR, err
    assert err.count("\n") == 1 and f"{source}:2: the text holds a lone surrogate" in err, err
    assert not target.exists()
    # A surrogate pair written as two escapes is one character, and ingests.
    source.write_text('{"text": "good \\ud83d\\ude00 film", "label": 1}\n', encoding="utf-8")
    assert ingest_main([str(source), str(target), "--vocab", "12", "--quiet"]) == 0
