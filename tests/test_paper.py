"""The measurements behind `make paper` (benchmarks/reproduce.py): stream accounting, targets."""

import numpy as np
import pytest
import torch

from _paper_common import layer_table
from cdnn.compress import compress
from reproduce import targets_met


def test_stream_accounting_matches_the_file_and_the_entropy_bound():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 40),
                                torch.nn.ReLU(), torch.nn.Linear(40, 5)).eval()
    packed = compress(model, torch.randn(2, 1, 8, 8), {"1": {"density": 0.2, "bits": 4},
                                                       "3": {"density": 0.5, "bits": 3}})
    rows = layer_table(packed.file)
    assert [r["layer"] for r in rows] == ["1", "3"]
    for r in rows:
        t = packed.file.tensor(f"{r['layer']}.weight")
        _, gaps, codes = packed.file.entries(t.name)
        for key, symbols in (("codes", codes), ("gaps", gaps)):
            s = r["streams"][key]
            section_bytes = packed.file.sections[t.desc[key]["section"]][1]
            assert s["count"] == len(symbols)
            # every byte of the stream's section is payload or table, none counted twice
            assert s["table_bytes"] + (s["payload_bits"] + 7) // 8 == section_bytes
            assert s["table_bytes"] >= 0
            # no prefix code beats the order-0 entropy; Huffman is within 1 bit per symbol
            p = np.bincount(symbols) / len(symbols)
            h = -(p[p > 0] * np.log2(p[p > 0])).sum() * len(symbols)
            assert s["entropy_bits"] == pytest.approx(h)
            assert s["payload_bits"] >= h - 1e-6
            if s["coding"] == "huffman":
                assert s["payload_bits"] < h + len(symbols)


def test_targets_are_judged_against_the_fair_baseline():
    pts = [{"label": "a", "ratio": 45.0, "cdnn_test_accuracy": 0.895},
           {"label": "b", "ratio": 30.0, "cdnn_test_accuracy": 0.899},
           {"label": "c", "ratio": 70.0, "cdnn_test_accuracy": 0.890}]
    t = targets_met("lenet-300-100", pts, baseline_test=0.900)
    # 40x within 0.3: only b (0.1 points below) qualifies, and it is 30x
    assert t["target"]["met"] is False
    assert t["target"]["best_within_drop"]["label"] == "b"
    # 64x within 1.0: c is 1.0 point below at 70x
    assert t["stretch"]["met"] is True
    assert t["stretch"]["best_within_drop"]["label"] == "c"
    none = targets_met("lenet-5", pts, baseline_test=0.95)
    assert none["target"]["best_within_drop"] is None and not none["target"]["met"]
