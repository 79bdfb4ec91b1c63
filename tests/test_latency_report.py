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
