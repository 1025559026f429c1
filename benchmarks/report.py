"""Run the benchmark suite and write a report of ratios measured in that one run.

Usage, from the repository root::

    python benchmarks/report.py [--full] [--out DIR] [--from-json FILE]

It runs::

    python -m pytest benchmarks --benchmark-only --benchmark-json DIR/results.json \\
        -p no:cacheprovider -q [--full]

then reads ``DIR/results.json`` and writes ``DIR/report.md`` (the machine, the exact command, and
Markdown tables in which each case sits beside its reference, as ratios of times measured in the
same run), ``DIR/throughput_vs_vocab.png`` (one-hot batches per second against vocab size, one
line per method) and ``DIR/rss_vs_rows.png`` (peak RSS of one epoch against corpus rows, beside
what the seed's approach, every one-hot target materialised, would take: computed, not run).

Options:

``--full``
    Benchmark at the sizes of DESIGN.md ("Performance targets"): GBs of memory, minutes of
    time. Without it every case runs at a small size, which is only a smoke test: the targets
    table then says "not measured (run with --full)".
``--out DIR``
    Where ``results.json``, ``report.md`` and the plots go (default ``benchmarks/report/``).
``--from-json FILE``
    Run nothing: build the report from an existing pytest-benchmark JSON file.

The exit status is pytest's (the report is still written when some cases failed, from those
that ran), or 1 when no results came out at all.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "report"
NOT_MEASURED = "not measured (run with --full)"

#: The shape every DESIGN.md target is stated at: (batch, max_len, vocab_size).
TARGET_SHAPE = (64, 300, 20000)
#: The seed materialised every one-hot target of IMDB train as float32: (rows, max_len, vocab).
IMDB_TRAIN = (25_000, 300, 20_000)
SEED_BYTES_PER_VALUE = 4  # float32

KERNEL_GROUP = re.compile(r"^onehot (\d+)x(\d+)x(\d+) (\w+)$")
KERAS_GROUP = re.compile(r"^batches via Keras PyDataset path (\d+)x(\d+)x(\d+) (\w+)$")
LAYOUT_GROUP = re.compile(r"^layout via Keras PyDataset path (\d+)x(\d+)x(\d+) (\w+)$")
#: The batch layouts of benchmarks/test_bench_layouts.py (each with one-hot float32 targets).
LAYOUTS = ("next_onehot", "lm_named_masked", "onehot_classes_masked")
TRAINING_GROUP = re.compile(r"^training step (\S+) (\S+)$")
RSS_GROUP_PREFIX = "epoch peak RSS"
INGEST_WORKERS_GROUP = "ingest workers"
VOCAB_IN_GROUP = re.compile(r"vocab (\d+)")

#: Kernel-group test -> (label, its role); the order is the table's and the plot's.
KERNEL_METHODS = {
    "test_kernel": "textvae kernel",
    "test_kernel_recycled": "textvae kernel, recycled buffer",
    "test_memset": "memset floor",
    "test_numpy_zeros_fancy_indexing": "np.zeros + fancy",
    "test_tf_one_hot": "tf.one_hot",
    "test_keras_to_categorical": "to_categorical (float64)",
}
KERAS_PIPELINES = ("textvae-w1", "textvae-w2", "tf.data", "numpy-pydataset-w2")
TF_DATA, PLAIN_PYDATASET = "tf.data", "numpy-pydataset-w2"


@dataclass(frozen=True)
class Case:
    """One benchmark of a pytest-benchmark JSON file (times in seconds)."""

    group: str
    test: str  # the test function, without its parameters
    param: str | None
    params: dict
    mean: float
    median: float
    min: float
    extra_info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """One DESIGN.md target: what was measured (``value`` None: not measured) and the verdict."""

    name: str
    threshold: str
    value: float | None
    met: bool | None
    shown: str  # the measured value as the report prints it

    @property
    def verdict(self) -> str:
        if self.value is None:
            return NOT_MEASURED
        return "met" if self.met else "MISSED"


# -- parsing -------------------------------------------------------------------------------------


def load_cases(data: dict) -> list[Case]:
    """Every benchmark of a pytest-benchmark JSON document that has timings."""
    cases = []
    for bench in data.get("benchmarks", []):
        stats = bench.get("stats") or {}
        if "mean" not in stats:
            continue
        name = str(bench.get("name", ""))
        cases.append(
            Case(
                group=str(bench.get("group") or ""),
                test=name.split("[", 1)[0],
                param=bench.get("param"),
                params=dict(bench.get("params") or {}),
                mean=float(stats["mean"]),
                median=float(stats.get("median", stats["mean"])),
                min=float(stats.get("min", stats["mean"])),
                extra_info=dict(bench.get("extra_info") or {}),
            )
        )
    return cases


def kernel_groups(cases: Iterable[Case]) -> dict[tuple[tuple[int, int, int], str], dict[str, Case]]:
    """``{((batch, max_len, vocab), dtype): {test: case}}`` of the kernel groups."""
    groups: dict[tuple[tuple[int, int, int], str], dict[str, Case]] = {}
    for case in cases:
        match = KERNEL_GROUP.match(case.group)
        if match and case.test in KERNEL_METHODS:
            shape = (int(match[1]), int(match[2]), int(match[3]))
            groups.setdefault((shape, match[4]), {})[case.test] = case
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0][2], kv[0][0], _order(kv[0][1]))))


def _order(name: str, order: Sequence[str] = ("float32", "float16", "uint8", "sparse")) -> int:
    return order.index(name) if name in order else len(order)


def _pipeline(case: Case, target: str) -> str:
    if "pipeline" in case.params:
        return str(case.params["pipeline"])
    param = case.param or ""
    return param[: -len(target) - 1] if param.endswith(f"-{target}") else param


def keras_groups(
    cases: Iterable[Case], pattern: re.Pattern = KERAS_GROUP
) -> dict[tuple[tuple[int, int, int], str], dict[str, Case]]:
    """``{((batch, max_len, vocab), target): {pipeline: case}}`` of the Keras-path groups
    (``pattern=LAYOUT_GROUP``: ``{(shape, layout): ...}`` of the batch-layout groups)."""
    groups: dict[tuple[tuple[int, int, int], str], dict[str, Case]] = {}
    for case in cases:
        match = pattern.match(case.group)
        if match:
            shape = (int(match[1]), int(match[2]), int(match[3]))
            groups.setdefault((shape, match[4]), {})[_pipeline(case, match[4])] = case
    return groups


def rss_epochs(cases: Iterable[Case]) -> tuple[list[dict], int | None, int | None]:
    """(epochs sorted by rows, each ``{"rows", "peak_rss_mb", ...}``; vocab; max_len) of the
    peak-RSS benchmark; older results with only ``*_small`` / ``*_large`` keys are read too."""
    for case in cases:
        if not case.group.startswith(RSS_GROUP_PREFIX):
            continue
        info = case.extra_info
        epochs = [dict(e) for e in info.get("epochs") or []]
        if not epochs:
            for which in ("small", "large"):
                if f"rows_{which}" in info and f"peak_rss_mb_{which}" in info:
                    epochs.append(
                        {"rows": info[f"rows_{which}"], "peak_rss_mb": info[f"peak_rss_mb_{which}"]}
                    )
        vocab = info.get("vocab_size")
        if vocab is None and (match := VOCAB_IN_GROUP.search(case.group)):
            vocab = int(match[1])
        return sorted(epochs, key=lambda e: e["rows"]), vocab, info.get("max_len")
    return [], None, None


def training_cases(cases: Iterable[Case]) -> dict[tuple[str, str], Case]:
    """``{(size, targets): case}`` of the data-wait benchmarks."""
    found = {}
    for case in cases:
        match = TRAINING_GROUP.match(case.group)
        if match and "wait_share" in case.extra_info:
            found[(match[1], match[2])] = case
    return found


# -- formatting ----------------------------------------------------------------------------------


def seed_bytes(rows: int, max_len: int, vocab_size: int) -> int:
    """Bytes of every one-hot target of a corpus materialised at once, as the seed did."""
    return rows * max_len * vocab_size * SEED_BYTES_PER_VALUE


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def fmt_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def fmt_bytes(n: float) -> str:
    """Decimal units (GB = 10^9 B), as the seed's sizes are usually quoted."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 1e3:,.1f} kB"


def _shape(shape: Sequence[int]) -> str:
    return " x ".join(f"{n:,}" for n in shape)


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# -- sections ------------------------------------------------------------------------------------


def kernel_section(cases: Sequence[Case]) -> str:
    groups = kernel_groups(cases)
    out = [
        "## 1. One-hot kernel beside its references",
        "",
        "The kernel writes into an existing buffer; `x memset` is each case's mean time over a "
        "memset of the same bytes (the floor), `kernel speedup` the case's mean time over the "
        "kernel's. `to_categorical` always returns float64 (twice the bytes of float32).",
    ]
    if not groups:
        return "\n".join([*out, "", NOT_MEASURED])
    for (shape, dtype), methods in groups.items():
        kernel, memset = methods.get("test_kernel"), methods.get("test_memset")
        rows = []
        for test, label in KERNEL_METHODS.items():
            case = methods.get(test)
            if case is None:
                if test != "test_keras_to_categorical" or dtype == "float32":
                    rows.append([label, "not measured", "—", "—", "—", "—"])
                continue
            rows.append(
                [
                    label,
                    fmt_ms(case.mean),
                    fmt_ms(case.median),
                    f"{1 / case.mean:,.1f}",
                    fmt_ratio(case.mean / memset.mean if memset else None),
                    fmt_ratio(case.mean / kernel.mean if kernel else None),
                ]
            )
        out += ["", f"### ({_shape(shape)}) {dtype}", ""]
        out.append(
            table(
                ["method", "mean ms", "median ms", "batches/s", "x memset", "kernel speedup"],
                rows,
            )
        )
    return "\n".join(out)


def keras_section(cases: Sequence[Case]) -> str:
    groups = keras_groups(cases)
    out = [
        "## 2. Batches through Keras' PyDataset path (what `model.fit` consumes)",
        "",
        "OneHotSequence over the shuffled, compressed store (1 and 2 thread workers) beside a "
        "warmed-up `tf.data` + `tf.one_hot` pipeline on the same ids and a plain PyDataset that "
        "builds targets with `np.zeros` + fancy indexing (2 workers). Throughput is the MEAN "
        "time per batch (batches/s = 1 / mean); the median is shown beside it. `x tf.data` and "
        "`x plain` are the reference's time over the case's: how many times the throughput.",
    ]
    if not groups:
        return "\n".join([*out, "", NOT_MEASURED])
    for (shape, target), pipelines in sorted(
        groups.items(), key=lambda kv: (kv[0][0], _order(kv[0][1]))
    ):
        tf_data, plain = pipelines.get(TF_DATA), pipelines.get(PLAIN_PYDATASET)
        order = [p for p in KERAS_PIPELINES if p in pipelines]
        order += sorted(set(pipelines) - set(order))
        rows = []
        for name in order:
            case = pipelines[name]
            rows.append(
                [
                    name,
                    fmt_ms(case.mean),
                    fmt_ms(case.median),
                    f"{1 / case.mean:,.1f}",
                    fmt_ratio(tf_data.mean / case.mean if tf_data else None),
                    fmt_ratio(tf_data.median / case.median if tf_data else None),
                    fmt_ratio(plain.mean / case.mean if plain else None),
                    fmt_ratio(plain.median / case.median if plain else None),
                ]
            )
        out += ["", f"### ({_shape(shape)}) {target}", ""]
        out.append(
            table(
                [
                    "pipeline",
                    "mean ms/batch",
                    "median ms/batch",
                    "batches/s (mean)",
                    "x tf.data (mean)",
                    "x tf.data (median)",
                    "x plain (mean)",
                    "x plain (median)",
                ],
                rows,
            )
        )
    return "\n".join(out)


def layout_section(cases: Sequence[Case]) -> str:
    groups = keras_groups(cases, LAYOUT_GROUP)
    out = [
        "## 2b. Batch layouts through Keras' PyDataset path",
        "",
        "OneHotSequence serving other layouts (`benchmarks/test_bench_layouts.py`), one-hot "
        "float32 each: `next_onehot` (next-token targets, bare), `lm_named_masked` (input "
        "`{'tokens': ids}`, next-token targets, padding mask as sample weights), "
        "`onehot_classes_masked` (one-hot targets and class ids, mask weights); beside a warmed "
        "`tf.data` pipeline building the same layout with `tf.one_hot`. `x tf.data` is the "
        "reference's mean time over the case's.",
    ]
    if not groups:
        return "\n".join([*out, "", NOT_MEASURED])
    rows = []
    for (shape, layout), pipelines in sorted(
        groups.items(), key=lambda kv: (kv[0][0], _order(kv[0][1], LAYOUTS))
    ):
        tf_data = pipelines.get(TF_DATA)
        for name in sorted(pipelines, key=lambda p: _order(p, KERAS_PIPELINES)):
            case = pipelines[name]
            rows.append(
                [
                    _shape(shape),
                    layout,
                    name,
                    fmt_ms(case.mean),
                    fmt_ms(case.median),
                    fmt_ratio(tf_data.mean / case.mean if tf_data else None),
                ]
            )
    out += ["", table(["shape", "layout", "pipeline", "mean ms", "median ms", "x tf.data"], rows)]
    return "\n".join(out)


def rss_section(cases: Sequence[Case]) -> str:
    epochs, vocab, max_len = rss_epochs(cases)
    imdb = seed_bytes(*IMDB_TRAIN)
    out = [
        "## 3. Memory: peak RSS of one epoch against corpus size",
        "",
        "Peak RSS (VmHWM of a fresh process) of one shuffled epoch of one-hot float32 batches of "
        "64 through Keras' PyDataset path (2 workers), beside the seed's approach: every one-hot "
        "target materialised at once, rows x max_len x vocab x 4 bytes (computed, not run). "
        f"IMDB train that way: {_shape(IMDB_TRAIN)} x 4 B = {fmt_bytes(imdb)}.",
    ]
    if not epochs:
        return "\n".join([*out, "", NOT_MEASURED])
    if vocab:
        out += ["", f"Synthetic stores, vocab {vocab:,}, max_len {max_len}."]
    out.append("")
    first = epochs[0]["peak_rss_mb"]
    rows = []
    for epoch in epochs:
        seed = fmt_bytes(seed_bytes(epoch["rows"], max_len, vocab)) if vocab and max_len else "—"
        seconds = epoch.get("epoch_s")
        rows.append(
            [
                f"{epoch['rows']:,}",
                f"{epoch['peak_rss_mb']:,.0f}",
                fmt_ratio(epoch["peak_rss_mb"] / first),
                "—" if seconds is None else f"{seconds:.1f}",
                seed,
            ]
        )
    out.append(
        table(
            ["rows", "peak RSS MiB", f"x {epochs[0]['rows']:,} rows", "epoch s", "seed approach"],
            rows,
        )
    )
    return "\n".join(out)


def training_section(cases: Sequence[Case]) -> str:
    found = training_cases(cases)
    out = [
        "## 4. Training: share of a fit step spent waiting for data",
        "",
        "Median `fit` step fed by OneHotSequence (2 workers) beside the same step fed one batch "
        "already in memory; wait share = (sequence - constant) / sequence.",
    ]
    if not found:
        return "\n".join([*out, "", NOT_MEASURED])
    rows = []
    for (size, targets), case in sorted(found.items()):
        info = case.extra_info
        rows.append(
            [
                size,
                targets,
                f"{info.get('step_s_sequence', float('nan')) * 1e3:.1f}",
                f"{info.get('step_s_constant_batch', float('nan')) * 1e3:.1f}",
                f"{info['wait_share']:.1%}",
            ]
        )
    out.append("")
    out.append(
        table(
            ["size", "targets", "step ms (sequence)", "step ms (constant batch)", "wait share"],
            rows,
        )
    )
    return "\n".join(out)


def ingest_section(cases: Sequence[Case]) -> str:
    found = [c for c in cases if c.group == "ingest" and "reviews_per_s" in c.extra_info]
    out = ["## 5. Ingest throughput (building a store)", ""]
    if not any(c.test == "test_ingest_imdb" for c in found):
        out.append(f"Real IMDB folder: {NOT_MEASURED}.")
        out.append("")
    if found:
        rows = [
            [
                "IMDB folder (tokenised)"
                if c.test == "test_ingest_imdb"
                else "synthetic (no text)",
                f"{c.extra_info.get('reviews', 0):,}",
                f"{c.extra_info.get('seconds', c.mean):.2f}",
                f"{c.extra_info['reviews_per_s']:,.0f}",
            ]
            for c in sorted(found, key=lambda c: c.test)
        ]
        out.append(table(["corpus", "reviews", "seconds", "reviews/s"], rows))
    workers = ingest_workers(cases)
    if workers:
        one = workers.get(1)
        rows = [
            [
                str(n),
                c.extra_info.get("corpus", "?"),
                f"{c.extra_info.get('reviews', 0):,}",
                f"{c.extra_info.get('seconds', c.mean):.2f}",
                f"{c.extra_info.get('reviews_per_s', 0):,.0f}",
                _others(c.extra_info.get("other_processes_cores")),
                fmt_ratio(one.min / c.min) if one else "—",
            ]
            for n, c in sorted(workers.items())
        ]
        out += [
            "",
            "Parallel ingest (`build_store(workers=N)`), the same corpus in one run (fastest "
            "round of each; others' CPU: cores other processes took during the build, 0 on a "
            "quiet machine):",
            "",
            table(
                ["workers", "corpus", "reviews", "seconds", "reviews/s", "others' CPU", "speedup"],
                rows,
            ),
        ]
    return "\n".join(out)


def _others(cores: float | None) -> str:
    return "—" if cores is None else f"{cores:.2f}"


def ingest_workers(cases: Iterable[Case]) -> dict[int, Case]:
    """The parallel-ingest cases by their number of workers."""
    return {
        int(c.extra_info["workers"]): c
        for c in cases
        if c.group == INGEST_WORKERS_GROUP and "workers" in c.extra_info
    }


def other_section(cases: Sequence[Case]) -> str:
    """Groups the sections above do not cover (``seq[i]`` alone, store reads): each case's
    mean over its group's reference (a test named ``*reference*``) or fastest case."""
    covered = (KERNEL_GROUP, KERAS_GROUP, LAYOUT_GROUP, TRAINING_GROUP)
    groups: dict[str, list[Case]] = {}
    for case in cases:
        if any(p.match(case.group) for p in covered):
            continue
        ingest = case.group in ("ingest", INGEST_WORKERS_GROUP)
        if case.group.startswith(RSS_GROUP_PREFIX) or ingest:
            continue
        groups.setdefault(case.group, []).append(case)
    if not groups:
        return ""
    out = ["## 6. Other cases (mean time over the group's reference)"]
    for group, members in sorted(groups.items()):
        references = [c for c in members if "reference" in c.test]
        reference = min(references or members, key=lambda c: c.mean)
        rows = [
            [
                c.test + (f"[{c.param}]" if c.param else ""),
                fmt_ms(c.mean),
                fmt_ms(c.median),
                fmt_ratio(c.mean / reference.mean),
            ]
            for c in sorted(members, key=lambda c: c.mean)
        ]
        out += ["", f"### {group}", "", f"Reference: `{reference.test}`.", ""]
        out.append(table(["case", "mean ms", "median ms", "x reference"], rows))
    return "\n".join(out)


# -- targets -------------------------------------------------------------------------------------


def _target(name: str, threshold: str, value: float | None, ok, shown=None) -> Target:
    if value is None:
        return Target(name, threshold, None, None, "—")
    return Target(name, threshold, value, bool(ok(value)), shown or fmt_ratio(value))


def targets(cases: Sequence[Case]) -> list[Target]:
    """Every DESIGN.md target, from the cases at the shapes it is stated at."""
    result = []
    kernels = kernel_groups(cases)
    f32 = kernels.get((TARGET_SHAPE, "float32"), {})
    u8 = kernels.get((TARGET_SHAPE, "uint8"), {})
    kernel32 = f32.get("test_kernel")
    memset = f32.get("test_memset")
    numpy = f32.get("test_numpy_zeros_fancy_indexing")
    kernel8 = u8.get("test_kernel")
    where = f"({_shape(TARGET_SHAPE)}) float32"
    result.append(
        _target(
            f"kernel time / memset of the same bytes, {where}",
            "<= 1.15x",
            kernel32.mean / memset.mean if kernel32 and memset else None,
            lambda r: r <= 1.15,
        )
    )
    result.append(
        _target(
            f"kernel speedup over np.zeros + fancy indexing, {where}",
            ">= 3x",
            numpy.mean / kernel32.mean if kernel32 and numpy else None,
            lambda r: r >= 3,
        )
    )
    result.append(
        _target(
            f"kernel uint8 speedup over float32, ({_shape(TARGET_SHAPE)})",
            ">= 3x",
            kernel32.mean / kernel8.mean if kernel32 and kernel8 else None,
            lambda r: r >= 3,
        )
    )
    keras = keras_groups(cases)
    for target in ("float32", "uint8"):
        pipelines = keras.get((TARGET_SHAPE, target), {})
        ours = [pipelines[p] for p in pipelines if p.startswith("textvae")]
        best = min(ours, key=lambda c: c.mean) if ours else None
        best_name = _pipeline(best, target) if best else ""
        for reference, label, threshold in (
            (TF_DATA, "tf.data + tf.one_hot", 2.0),
            (PLAIN_PYDATASET, "plain np.zeros PyDataset", 5.0),
        ):
            ref = pipelines.get(reference)
            value = ref.mean / best.mean if best and ref else None
            result.append(
                _target(
                    f"PyDataset path throughput / {label}, {target} (mean per batch)",
                    f">= {threshold:g}x",
                    value,
                    lambda r, t=threshold: r >= t,
                    None if value is None else f"{value:.2f}x ({best_name}, best of w1/w2)",
                )
            )
    layouts = keras_groups(cases, LAYOUT_GROUP)
    for layout in LAYOUTS:
        pipelines = layouts.get((TARGET_SHAPE, layout), {})
        ours = [pipelines[p] for p in pipelines if p.startswith("textvae")]
        best = min(ours, key=lambda c: c.mean) if ours else None
        ref = pipelines.get(TF_DATA)
        value = ref.mean / best.mean if best and ref else None
        result.append(
            _target(
                f"layout {layout}, float32: PyDataset path throughput / tf.data + tf.one_hot",
                ">= 2x",
                value,
                lambda r: r >= 2.0,
                None if value is None else f"{value:.2f}x ({_pipeline(best, layout)})",
            )
        )
    epochs, _, _ = rss_epochs(cases)
    by_rows = {e["rows"]: e["peak_rss_mb"] for e in epochs}
    result.append(
        _target(
            "peak RSS of an epoch, RSS(1M rows) / RSS(10k rows)",
            "<= 1.15",
            by_rows[1_000_000] / by_rows[10_000]
            if 1_000_000 in by_rows and 10_000 in by_rows
            else None,
            lambda r: r <= 1.15,
            None,
        )
    )
    training = training_cases(cases)
    for size in ("quick", "seed"):
        for kind in ("onehot", "sparse"):
            case = training.get((size, kind))
            share = case.extra_info["wait_share"] if case else None
            result.append(
                _target(
                    f"share of a fit step waiting for data, {size} model, {kind} targets",
                    "< 5%",
                    share,
                    lambda s: s < 0.05,
                    None if share is None else f"{share:.1%}",
                )
            )
    workers = ingest_workers(cases)
    imdb = {n: c for n, c in workers.items() if c.extra_info.get("corpus") == "IMDB"}
    result.append(
        _target(
            "parallel ingest of IMDB, 2 workers' speedup over 1",
            ">= 1.7x",
            imdb[1].min / imdb[2].min if 1 in imdb and 2 in imdb else None,
            lambda r: r >= 1.7,
        )
    )
    return result


def targets_section(cases: Sequence[Case]) -> str:
    rows = [[t.name, t.threshold, t.shown, t.verdict] for t in targets(cases)]
    return "\n".join(
        [
            '## Targets (DESIGN.md, "Performance targets")',
            "",
            table(["target", "wanted", "measured", "verdict"], rows),
        ]
    )


# -- machine and report --------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """This machine: CPU model, cores, memory, Python and platform."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        memory = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        memory = "unknown (no psutil)"
    return {
        "CPU": model,
        "cores (os.cpu_count)": str(os.cpu_count()),
        "memory": memory,
        "Python": platform.python_version(),
        "platform": platform.platform(),
    }


def build_report(data: dict, *, command: str, machine_info: dict[str, str]) -> str:
    """The Markdown report of a pytest-benchmark JSON document."""
    cases = load_cases(data)
    header = [
        "# textvae benchmark report",
        "",
        "Every ratio compares cases timed in this one run, on this machine:",
        "",
        *[f"- {key}: {value}" for key, value in machine_info.items()],
    ]
    cpu = (data.get("machine_info") or {}).get("cpu") or {}
    if cpu:
        header.append(
            f"- machine in the results JSON: {data['machine_info'].get('node', '?')}, "
            f"{cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores"
        )
    if data.get("datetime"):
        header.append(f"- run at: {data['datetime']}")
    header += ["", "Command (from the repository root):", "", "```", command, "```"]
    measured_shapes = {shape for shape, _ in [*kernel_groups(cases), *keras_groups(cases)]}
    if TARGET_SHAPE not in measured_shapes:
        header += [
            "",
            "Small sizes (no `--full`): a smoke test of the suite; the targets are stated at "
            'full size and read "not measured" here.',
        ]
    sections = [
        "\n".join(header),
        targets_section(cases),
        kernel_section(cases),
        keras_section(cases),
        layout_section(cases),
        rss_section(cases),
        training_section(cases),
        ingest_section(cases),
        other_section(cases),
        "## Plots\n\n![throughput vs vocab](throughput_vs_vocab.png)\n\n"
        "![RSS vs rows](rss_vs_rows.png)",
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


# -- plots ---------------------------------------------------------------------------------------

#: (marker, linestyle) of the i-th line of a plot: no two alike, so a line that runs on top of
#: another (the kernel under the memset floor) still shows; later lines are drawn thinner, with
#: smaller, hollow markers, on top of the earlier ones.
LINE_STYLES = (
    ("o", "-"),
    ("s", "--"),
    ("^", "-."),
    ("D", ":"),
    ("v", (0, (5, 2, 1, 2))),
    ("X", (0, (1, 1))),
    ("P", (0, (8, 3))),
)


def line_style(index: int) -> dict:
    """``ax.plot`` keywords of the ``index``-th line of a plot (see :data:`LINE_STYLES`)."""
    marker, linestyle = LINE_STYLES[index % len(LINE_STYLES)]
    return {
        "marker": marker,
        "linestyle": linestyle,
        "markersize": max(4.0, 10.0 - 1.5 * index),
        "linewidth": max(1.0, 2.4 - 0.3 * index),
        "markerfacecolor": "none" if index % 2 else None,
        "zorder": 2 + index,
    }


def stamp_text(data: dict, machine_info: dict[str, str]) -> str:
    """The machine and the date a plot's numbers come from: the results JSON's own record
    (pytest-benchmark's ``machine_info`` and ``datetime``) where it has one, else
    ``machine_info`` and today."""
    recorded = data.get("machine_info") or {}
    cpu = recorded.get("cpu") or {}
    system = " ".join(
        str(recorded[k]) for k in ("system", "release", "machine") if recorded.get(k)
    ) or machine_info.get("platform", "")
    model = cpu.get("brand_raw") or machine_info.get("CPU", "")
    cores = cpu.get("count") or machine_info.get("cores (os.cpu_count)")
    when = str(data.get("datetime") or datetime.date.today().isoformat())[:10]
    parts = [system, model, f"{cores} cores" if cores else "", when]
    return " | ".join(part for part in parts if part)


def _stamp(fig, text: str) -> None:
    if text:
        fig.text(0.005, 0.005, text, fontsize=7, color="dimgray", ha="left", va="bottom")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_throughput(
    cases: Sequence[Case], path: str | os.PathLike[str], *, stamp: str = ""
) -> Path:
    """One-hot batches per second (1 / mean) against vocab size, one panel per dtype and one
    line per method (each its own marker and dashes), from the kernel groups; ``stamp`` (the
    machine and date: :func:`stamp_text`) is written at the bottom."""
    plt = _pyplot()
    groups = kernel_groups(cases)
    dtypes = sorted({dtype for _, dtype in groups}, key=_order)
    fig, axes = plt.subplots(
        1, max(1, len(dtypes)), figsize=(5 * max(1, len(dtypes)), 4.2), sharey=True, squeeze=False
    )
    for ax, dtype in zip(axes[0], dtypes, strict=False):
        prefixes = {shape[:2] for shape, d in groups if d == dtype}
        for m, (test, label) in enumerate(KERNEL_METHODS.items()):
            for p, prefix in enumerate(sorted(prefixes)):
                points = sorted(
                    (shape[2], 1 / methods[test].mean)
                    for (shape, d), methods in groups.items()
                    if d == dtype and shape[:2] == prefix and test in methods
                )
                if not points:
                    continue
                name = label if len(prefixes) == 1 else f"{label} ({prefix[0]}x{prefix[1]})"
                # one style per method (and batch shape) in every panel
                ax.plot(*zip(*points, strict=True), label=name, **line_style(m * len(prefixes) + p))
        batch = ", ".join(f"batch {b} x {n}" for b, n in sorted(prefixes))
        ax.set_title(f"{dtype} ({batch})")
        ax.set_xscale("log")
        vocabs = sorted({shape[2] for shape, d in groups if d == dtype})
        ax.set_xticks(vocabs, [f"{v:,}" for v in vocabs])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("vocab size")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("one-hot batches per second (1 / mean)")
    if not dtypes:
        axes[0][0].text(0.5, 0.5, NOT_MEASURED, ha="center", va="center")
    # One legend for the figure, below the panels: inside a panel it covered lines.
    legend = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    columns = min(len(legend), 4) or 1
    rows = -(-len(legend) // columns)
    fig.set_figheight(4.2 + 0.25 * rows)
    bottom = (0.3 + 0.25 * rows) / fig.get_figheight()
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=columns, fontsize=8)
    fig.suptitle("One-hot batch throughput against vocab size (higher is better)")
    _stamp(fig, stamp)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_rss(
    cases: Sequence[Case],
    path: str | os.PathLike[str],
    *,
    memory_bytes: float | None = None,
    stamp: str = "",
) -> Path:
    """Peak RSS of one epoch against corpus rows (measured) beside the seed's approach
    (computed), log-log; ``memory_bytes`` draws this machine's memory as a line; ``stamp`` as
    for :func:`plot_throughput`."""
    plt = _pyplot()
    epochs, vocab, max_len = rss_epochs(cases)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    gb = 1e9
    if epochs:
        rows = [e["rows"] for e in epochs]
        measured = [e["peak_rss_mb"] * 2**20 / gb for e in epochs]
        ax.plot(rows, measured, marker="o", label="textvae OneHotSequence, measured peak RSS")
        for x, y in zip(rows, measured, strict=True):
            ax.annotate(
                f"{y:.2f} GB",
                (x, y),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
            )
        if vocab and max_len:
            ax.plot(
                rows,
                [seed_bytes(r, max_len, vocab) / gb for r in rows],
                marker="s",
                linestyle="--",
                label=f"seed: all one-hot targets, rows x {max_len} x {vocab:,} x 4 B (computed)",
            )
    else:
        ax.text(0.5, 0.5, NOT_MEASURED, ha="center", va="center", transform=ax.transAxes)
    ax.plot(
        [IMDB_TRAIN[0]],
        [seed_bytes(*IMDB_TRAIN) / gb],
        marker="*",
        markersize=12,
        linestyle="none",
        label=f"seed on IMDB train, {_shape(IMDB_TRAIN)} x 4 B (computed)",
    )
    if memory_bytes:
        ax.axhline(memory_bytes / gb, color="grey", linestyle=":", label="this machine's memory")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("corpus rows")
    ax.set_ylabel("peak memory of one epoch (GB, log)")
    ax.set_title("Memory of one epoch against corpus size (lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _stamp(fig, stamp)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    data: dict, out: str | os.PathLike[str], *, command: str, machine_info: dict[str, str]
) -> Path:
    """``report.md`` and both plots of ``data`` in ``out``; the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cases = load_cases(data)
    stamp = stamp_text(data, machine_info)
    plot_throughput(cases, out / "throughput_vs_vocab.png", stamp=stamp)
    try:
        import psutil

        memory = psutil.virtual_memory().total
    except ImportError:
        memory = None
    plot_rss(cases, out / "rss_vs_rows.png", memory_bytes=memory, stamp=stamp)
    report = out / "report.md"
    report.write_text(build_report(data, command=command, machine_info=machine_info))
    return report


# -- command line --------------------------------------------------------------------------------


def pytest_command(out: Path, *, full: bool, python: str = sys.executable) -> list[str]:
    """The pytest command line, run from the repository root (:data:`ROOT`)."""
    command = [python, "-m", "pytest", "benchmarks", "--benchmark-only"]
    command += ["--benchmark-json", str(out / "results.json"), "-p", "no:cacheprovider", "-q"]
    return [*command, "--full"] if full else command


def shown_command(out: Path, *, full: bool, log_level: str) -> str:
    """:func:`pytest_command` as the report quotes it: ``python`` and paths relative to the
    repository root, so it reads the same on every machine (absolute paths of the machine that
    ran it would say nothing elsewhere, and leak its layout)."""
    out = Path(out).resolve()
    try:
        out = out.relative_to(ROOT)
    except ValueError:  # an --out outside the repository: only its absolute path says where
        pass
    command = pytest_command(out, full=full, python="python")
    return f"TF_CPP_MIN_LOG_LEVEL={log_level} " + shlex.join(command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="benchmark at full size (GBs)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--from-json", type=Path, help="report on this JSON; run nothing")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    rc = 0
    if args.from_json is not None:
        source = args.from_json
        command = f"(report built from {source}; the benchmark command is not known)"
    else:
        source = out / "results.json"
        source.unlink(missing_ok=True)  # never report on a previous run's results
        command_list = pytest_command(out, full=args.full)
        log_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
        command = shown_command(out, full=args.full, log_level=log_level)
        print(command, flush=True)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": log_level}
        rc = subprocess.run(command_list, cwd=ROOT, env=env, check=False).returncode
    try:
        data = json.loads(Path(source).read_text())
    except (OSError, ValueError) as error:
        print(f"report.py: no benchmark results to report: {error}", file=sys.stderr)
        return rc or 1
    report = write_report(data, out, command=command, machine_info=machine())
    print(f"report: {report}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
