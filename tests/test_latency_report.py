"""benchmarks/_latency_report.py: the committed latency.md is what the writer makes of the
committed latency.json, so the report and its data cannot drift apart."""

import json
import os

from _latency_report import markdown, plot, targets

RESULTS = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results")


def _load(name):
    with open(os.path.join(RESULTS, name)) as fh:
        return fh.read()


def test_markdown_of_the_committed_run_is_the_committed_report():
    report = json.loads(_load("latency.json"))
    assert targets(report) == report["targets"]
    assert markdown(report) == _load("latency.md")


def test_plot_draws_the_batch1_latencies(tmp_path):
    report = json.loads(_load("latency.json"))
    path = tmp_path / "latency.png"
    assert plot(report, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_performance_targets_are_judged_from_the_run():
    ratios = {"1": {"ratios": {"ort_int8": 0.9, "ort": 0.8, "torch": 0.3}},
              "32": {"ratios": {"ort": 1.2, "torch": 0.9}}}
    report = {"models": {"lenet-5": {"latency": ratios},
                         "resnet50": {"latency": {"1": {"ratios": {"ort": 1.5}}}}},
              "subprocess": {"vgg16_cold": {"start_to_result_s": 9.5},
                             "resnet50_cold": {"start_to_result_s": 12.0},
                             "after_warmup": {"lenet-5": {"compiled": 0},
                                              "vgg16": {"compiled": 3}},
                             "peak_memory": {"lenet-5": {"cdnn_peak_rss_mb": 100.0,
                                                         "cdnn_torch_loaded": False}}}}
    got = {r["target"]: r["met"] for r in targets(report)}
    assert got["LeNet-5 batch 1: cdnn / onnxruntime dyn. int8 <= 1.0"] is True
    assert got["LeNet-5 batch 32: cdnn / onnxruntime fp32 <= 1.0"] is False
    assert got["ResNet-50 batch 1: cdnn / onnxruntime fp32 <= 1.0"] is False
    assert got["VGG-16 cold start (empty cache) to first result <= 10 s"] is True
    assert got["ResNet-50 cold start (empty cache) to first result <= 10 s"] is False
    assert got["LeNet-5 after `cdnn-runtime warmup`: signatures compiled = 0"] is True
    assert got["VGG-16 after `cdnn-runtime warmup`: signatures compiled = 0"] is False
    assert got["LeNet-5 peak memory, cdnn_runtime only < 100 MB"] is False  # strictly below
