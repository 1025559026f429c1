"""benchmarks/report.py on hand-made pytest-benchmark results: ratios, verdicts, plots."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPORT_PY = Path(__file__).resolve().parent.parent / "benchmarks" / "report.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MACHINE = {"CPU": "test CPU", "cores (os.cpu_count)": "2", "memory": "1.0 GiB"}


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", REPORT_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def bench(group, name, mean, *, median=None, params=None, extra_info=None):
    """One entry shaped like pytest-benchmark's JSON output."""
    param = name.split("[", 1)[1].rstrip("]") if "[" in name else None
    return {
        "group": group,
        "name": name,
        "fullname": f"benchmarks/x.py::{name}",
        "param": param,
        "params": params,
        "extra_info": extra_info or {},
        "stats": {"mean": mean, "median": median or mean, "min": mean * 0.9, "rounds": 5},
    }


def kernel(size, dtype, test, mean):
    shape = "x".join(map(str, size))
    return bench(
        f"onehot {shape} {dtype}",
        f"{test}[{shape}-{dtype}]",
        mean,
        params={"size": list(size), "dtype": dtype},
    )


def keras_path(target, pipeline, mean, median=None):
    return bench(
        f"batches via Keras PyDataset path 64x300x20000 {target}",
        f"test_keras_path[{pipeline}-{target}]",
        mean,
        median=median,
        params={"pipeline": pipeline, "target": target},
    )


def training(size, targets, share):
    return bench(
        f"training step {size} {targets}",
        f"test_data_wait_share[{size}-{targets}]",
        1.0,
        params={"size": size, "targets": targets},
        extra_info={"step_s_sequence": 0.2, "step_s_constant_batch": 0.19, "wait_share": share},
    )


@pytest.fixture
def data():
    full = (64, 300, 20000)
    epochs = [
        {"rows": 10_000, "peak_rss_mb": 1400.0, "epoch_s": 1.0},
        {"rows": 100_000, "peak_rss_mb": 1450.0, "epoch_s": 5.0},
        {"rows": 1_000_000, "peak_rss_mb": 1700.0, "epoch_s": 45.0},
    ]
    return {
        "datetime": "2026-01-01T00:00:00",
        "benchmarks": [
            kernel(full, "float32", "test_kernel", 0.110),
            kernel(full, "float32", "test_memset", 0.100),
            kernel(full, "float32", "test_numpy_zeros_fancy_indexing", 0.400),
            kernel(full, "float32", "test_tf_one_hot", 0.500),
            bench(
                "onehot 64x300x20000 float32",
                "test_keras_to_categorical[64x300x20000]",
                0.900,
                params={"size": list(full)},
            ),
            kernel(full, "uint8", "test_kernel", 0.030),
            kernel(full, "uint8", "test_memset", 0.025),
            kernel((64, 300, 2000), "float32", "test_kernel", 0.011),
            kernel((64, 300, 2000), "float32", "test_memset", 0.010),
            keras_path("float32", "textvae-w1", 0.030, median=0.020),
            keras_path("float32", "textvae-w2", 0.036),
            keras_path("float32", "tf.data", 0.050, median=0.060),
            keras_path("float32", "numpy-pydataset-w2", 0.300),
            bench(
                "epoch peak RSS (onehot float32, vocab 2000, batch 64, 2 workers)",
                "test_epoch_peak_rss",
                50.0,
                extra_info={"vocab_size": 2000, "max_len": 300, "epochs": epochs},
            ),
            training("quick", "onehot", 0.02),
            training("seed", "sparse", 0.08),
            bench(
                "ingest",
                "test_ingest_imdb",
                10.0,
                extra_info={"reviews": 50000, "seconds": 10.0, "reviews_per_s": 5000.0},
            ),
            *(
                bench(
                    "ingest workers",
                    f"test_ingest_workers[{n}]",
                    seconds,
                    extra_info={
                        "workers": n,
                        "corpus": "IMDB",
                        "reviews": 50000,
                        "seconds": seconds,
                        "reviews_per_s": 50000 / seconds,
                        "load_average_1min": 0.5,
                        "other_processes_cores": 0.01,
                    },
                )
                for n, seconds in ((1, 16.0), (2, 8.0))
            ),
            {"group": "no stats", "name": "test_broken", "stats": None},  # skipped: no timings
        ],
    }


def verdicts(report, data) -> dict[str, tuple[float | None, str]]:
    return {t.name: (t.value, t.verdict) for t in report.targets(report.load_cases(data))}


def test_target_ratios_and_verdicts(report, data):
    got = verdicts(report, data)
    where = "(64 x 300 x 20,000)"
    assert got[f"kernel time / memset of the same bytes, {where} float32"] == (
        pytest.approx(1.1),
        "met",
    )
    assert got[f"kernel speedup over np.zeros + fancy indexing, {where} float32"] == (
        pytest.approx(0.4 / 0.11),
        "met",
    )
    assert got[f"kernel uint8 speedup over float32, {where}"] == (pytest.approx(0.11 / 0.03), "met")
    # The best of the textvae pipelines (w1: 30 ms) against each reference, on the mean.
    tf_data = "PyDataset path throughput / tf.data + tf.one_hot"
    plain = "PyDataset path throughput / plain np.zeros PyDataset"
    assert got[f"{tf_data}, float32 (mean per batch)"] == (pytest.approx(0.05 / 0.03), "MISSED")
    assert got[f"{plain}, float32 (mean per batch)"] == (pytest.approx(10.0), "met")
    assert got["peak RSS of an epoch, RSS(1M rows) / RSS(10k rows)"] == (
        pytest.approx(1700 / 1400),
        "MISSED",
    )
    waiting = "share of a fit step waiting for data"
    assert got[f"{waiting}, quick model, onehot targets"] == (pytest.approx(0.02), "met")
    assert got[f"{waiting}, seed model, sparse targets"] == (pytest.approx(0.08), "MISSED")
    assert got["parallel ingest of IMDB, 2 workers' speedup over 1"] == (pytest.approx(2.0), "met")


def test_missing_cases_are_not_measured(report, data):
    got = verdicts(report, data)
    not_measured = (None, "not measured (run with --full)")
    assert got["PyDataset path throughput / tf.data + tf.one_hot, uint8 (mean per batch)"] == (
        not_measured
    )
    assert got["share of a fit step waiting for data, seed model, onehot targets"] == not_measured
    empty = verdicts(report, {"benchmarks": []})
    assert set(empty.values()) == {not_measured}


def test_report_tables(report, data):
    text = report.build_report(data, command="python -m pytest benchmarks", machine_info=MACHINE)
    assert "- CPU: test CPU" in text and "python -m pytest benchmarks" in text
    # Kernel: each case's mean over the memset's, and over the kernel's.
    assert "| np.zeros + fancy | 400 | 400 | 2.5 | 4.00x | 3.64x |" in text
    # Keras path: textvae-w1 against tf.data on the mean (1.67x) and on the median (3.00x).
    assert "| textvae-w1 | 30.00 | 20.00 | 33.3 | 1.67x | 3.00x | 10.00x | 15.00x |" in text
    # Memory: measured beside the seed's approach at the same shape, and IMDB train's 600 GB.
    assert "| 1,000,000 | 1,700 | 1.21x | 45.0 | 2.4 TB |" in text
    assert "600.0 GB" in text
    assert "| quick | onehot | 200.0 | 190.0 | 2.0% |" in text
    assert "| IMDB folder (tokenised) | 50,000 | 10.00 | 5,000 |" in text
    assert "| 2 | IMDB | 50,000 | 8.00 | 6,250 | 0.01 | 2.00x |" in text
    assert "MISSED" in text and "not measured (run with --full)" in text


def test_report_of_nothing_does_not_crash(report):
    text = report.build_report({"benchmarks": []}, command="c", machine_info=MACHINE)
    assert text.count("not measured (run with --full)") >= 12


def test_plots_are_pngs(report, data, tmp_path):
    path = report.write_report(data, tmp_path / "out", command="c", machine_info=MACHINE)
    assert path.read_text().startswith("# textvae benchmark report")
    for name in ("throughput_vs_vocab.png", "rss_vs_rows.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG_MAGIC
    empty = report.load_cases({"benchmarks": []})
    for plot in (report.plot_throughput, report.plot_rss):
        assert plot(empty, tmp_path / f"{plot.__name__}.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("full", [False, True], ids=["small", "full"])
def test_shown_command_is_relative_to_the_repository(report, full):
    out = report.ROOT / "benchmarks" / "report"
    command = report.shown_command(out, full=full, log_level="2")
    assert command.startswith("TF_CPP_MIN_LOG_LEVEL=2 python -m pytest benchmarks ")
    assert "--benchmark-json benchmarks/report/results.json" in command
    assert str(report.ROOT) not in command and sys.executable not in command
    assert command.endswith("--full") == full
    # the command that runs is the same but for the interpreter and the absolute paths
    ran = report.pytest_command(out, full=full)
    assert ran[0] == sys.executable and str(out / "results.json") in ran


def test_shown_command_outside_the_repository_keeps_the_path(report, tmp_path):
    command = report.shown_command(tmp_path, full=False, log_level="2")
    assert f"--benchmark-json {tmp_path / 'results.json'}" in command


def layout_path(layout, pipeline, mean):
    return bench(
        f"layout via Keras PyDataset path 64x300x20000 {layout}",
        f"test_layout_keras_path[{pipeline}-{layout}]",
        mean,
        params={"pipeline": pipeline, "layout": layout},
    )


def test_layout_targets_and_table(report):
    data = {
        "benchmarks": [
            layout_path("next_onehot", "textvae-w1", 0.004),
            layout_path("next_onehot", "textvae-w2", 0.002),
            layout_path("next_onehot", "tf.data", 0.060),
            layout_path("lm_named_masked", "textvae-w1", 0.040),
            layout_path("lm_named_masked", "tf.data", 0.060),
        ]
    }
    got = verdicts(report, data)
    name = "layout {}, float32: PyDataset path throughput / tf.data + tf.one_hot"
    assert got[name.format("next_onehot")] == (pytest.approx(30.0), "met")  # best: w2
    assert got[name.format("lm_named_masked")] == (pytest.approx(1.5), "MISSED")
    assert got[name.format("onehot_classes_masked")] == (None, "not measured (run with --full)")
    text = report.build_report(data, command="c", machine_info=MACHINE)
    assert "| 64 x 300 x 20,000 | next_onehot | textvae-w2 | 2.00 | 2.00 | 30.00x |" in text
    assert "### layout via" not in text  # not repeated among the other cases


def test_stamp_names_the_machine_and_the_date(report):
    recorded = {
        "datetime": "2026-12-01T10:11:12.000001",
        "machine_info": {
            "system": "Linux",
            "release": "6.1",
            "machine": "x86_64",
            "cpu": {"brand_raw": "Some CPU 9000", "count": 2},
        },
    }
    assert (
        report.stamp_text(recorded, MACHINE)
        == "Linux 6.1 x86_64 | Some CPU 9000 | 2 cores | 2026-12-01"
    )
    # --from-json of a file without its own record: this machine, today
    bare = report.stamp_text({}, {**MACHINE, "platform": "Linux-6.1-x86_64"})
    assert bare.startswith("Linux-6.1-x86_64 | test CPU | 2 cores | 20")


def test_no_two_lines_alike_and_the_stamp_is_drawn(report, data, tmp_path, monkeypatch):
    """The kernel's line ran under the memset floor's, both drawn as "-o" lines: every line of
    a panel now has its own marker and dashes, and the machine and date are on the figure."""
    styles = [report.line_style(i) for i in range(len(report.KERNEL_METHODS))]
    assert len({s["marker"] for s in styles}) == len(styles)
    assert len({str(s["linestyle"]) for s in styles}) == len(styles)
    plt = report._pyplot()
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    report.plot_throughput(report.load_cases(data), tmp_path / "t.png", stamp="Linux | CPU | 2026")
    (fig,) = figures
    for ax in fig.axes:
        drawn = [(line.get_marker(), str(line.get_linestyle())) for line in ax.get_lines()]
        assert len(drawn) >= 2 and len(set(drawn)) == len(drawn), drawn
    assert "Linux | CPU | 2026" in [text.get_text() for text in fig.texts]
    monkeypatch.undo()
    plt.close(fig)
