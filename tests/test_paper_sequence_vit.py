"""The ViT figures of `make paper` (benchmarks/paper_vit.py): the --quick smoke run, the choice
of the reported point on validation, and its PAPER.md section kept when reproduce.py rewrites
the file."""

import json
import os
import subprocess
import sys

import pytest

from _paper_common import SECTION_MARK, kept_sections, write_section
from cdnn.datasets import CdnnDatasetMissingError, fashion_mnist
from paper_vit import TITLE, chosen

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "paper_vit.py")


def _have_fashion_mnist():
    try:
        fashion_mnist(split="test")
    except CdnnDatasetMissingError:
        return False
    return True


def test_the_point_reported_is_chosen_on_validation():
    pts = [{"label": "a", "ratio": 8.0, "cdnn_val_accuracy": 0.900, "cdnn_test_accuracy": 0.80},
           {"label": "b", "ratio": 12.0, "cdnn_val_accuracy": 0.893, "cdnn_test_accuracy": 0.99},
           {"label": "c", "ratio": 15.0, "cdnn_val_accuracy": 0.880, "cdnn_test_accuracy": 0.99}]
    # within 1 point of the baseline's 0.901 on validation: a and b; b is the smaller file
    assert chosen(pts, baseline_val=0.901) == "b"
    # none within 1 point: the most accurate on validation, whatever the test set says
    assert chosen(pts, baseline_val=0.95) == "a"


def test_a_section_is_replaced_in_place_and_kept_by_a_rewrite(tmp_path):
    path = tmp_path / "PAPER.md"
    path.write_text("# title\n\nintro\n\n## lenet-5\n\ntable\n")
    mark = SECTION_MARK.format(script="paper_vit.py")
    write_section(path, f"{TITLE}\n{mark}\n\nfirst\n")
    write_section(path, f"{TITLE}\n{mark}\n\nsecond\n")
    text = path.read_text()
    assert text == f"# title\n\nintro\n\n## lenet-5\n\ntable\n\n{TITLE}\n{mark}\n\nsecond\n"
    # reproduce.py's rewrite keeps the marked section, not its own old ones
    new = "# title\n\n## lenet-5\n\nnew table"
    assert kept_sections(path, new) == f"\n{TITLE}\n{mark}\n\nsecond\n"
    assert kept_sections(tmp_path / "missing.md", new) == ""


@pytest.mark.skipif(not _have_fashion_mnist(), reason="needs dataset-fashion-mnist")
def test_quick_run_writes_json_and_section(tmp_path):
    """The whole script on a few hundred images, one short epoch a call (well under a minute)."""
    (tmp_path / "PAPER-quick.md").write_text("# cdnn\n\n## lenet-5\n\ntable\n")
    r = subprocess.run([sys.executable, SCRIPT, "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "paper_vit-quick.json").read_text())
    assert report["quick"] and report["threads"] == 1
    assert [p["density"] for p in report["points"]] == [0.5, 0.3]
    for p in report["points"]:
        assert p["ratio"] > 5 and 0 <= p["cdnn_test_accuracy"] <= 1
        assert {r["weight_bits_pq"] for r in p["layers"] if r["layer"] != "patch"} == {4}
    assert report["chosen"] in {p["label"] for p in report["points"]}
    text = (tmp_path / "PAPER-quick.md").read_text()
    assert text.startswith("# cdnn\n\n## lenet-5\n\ntable\n\n" + TITLE)
    # --from-json rewrites the section in place
    r = subprocess.run([sys.executable, SCRIPT, "--from-json",
                        str(tmp_path / "paper_vit-quick.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "PAPER-quick.md").read_text() == text
