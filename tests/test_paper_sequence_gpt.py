"""The character-level GPT of `make paper` (benchmarks/paper_chargpt.py): its corpus and
vocabulary, the --quick smoke run, and the docs example generating text from its file."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import paper_chargpt as pc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "paper_chargpt.py")
EXAMPLE = os.path.join(ROOT, "docs", "examples", "generate_text.py")


def test_vocabulary_and_split_are_fixed():
    assert pc.VOCAB == 98
    ids = pc.encode("a\tb\n~ é")
    assert ids.tolist() == [pc.CHARS.index(c) + 1 for c in "a\tb\n~ "] + [pc.OTHER_ID]
    assert pc.encode("").size == 0
    # by file, on the path alone: the same answer on every machine and run
    assert pc.split_of("json/decoder.py") == pc.split_of("json/decoder.py")
    splits = [pc.split_of(f"pkg/m{i}.py") for i in range(2000)]
    assert 0.07 < splits.count("heldout") / 2000 < 0.13
    assert 0.07 < splits.count("val") / 2000 < 0.13


def test_bits_per_character_is_cross_entropy_in_bits():
    logits = np.zeros((2, 3, 4), np.float32)  # uniform over 4 ids: 2 bits each
    total, n = pc._bits(logits, np.zeros((2, 3), np.int64))
    assert n == 6 and total / n == pytest.approx(2.0)


def _quick(out, work):
    r = subprocess.run([sys.executable, SCRIPT, "--quick", "--out", str(out), "--work",
                        str(work)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("chargpt")
    _quick(out, out / "work")
    return out


def test_a_rerun_with_the_work_folder_resumes(quick_run, tmp_path):
    # every phase is in the work folder: nothing is trained again, the figures are the same
    log = _quick(tmp_path, quick_run / "work")
    assert "pruned (" not in log  # no density pruned again
    first, again = (json.loads((d / "paper_chargpt-quick.json").read_text())
                    for d in (quick_run, tmp_path))
    assert again["resumed"] and not first["resumed"]
    assert again["points"] == first["points"] and again["dense"] == first["dense"]


def test_quick_run_writes_json_section_and_file(quick_run):
    with open(quick_run / "paper_chargpt-quick.json") as fh:
        rep = json.load(fh)
    assert rep["quick"] and rep["vocab"]["size"] == pc.VOCAB
    assert rep["corpus"]["python"] == sys.version.split()[0]
    assert {"train", "val", "heldout"} <= set(rep["corpus"])
    for p in rep["points"]:
        assert p["file_bytes"] > 0 and np.isfinite(p["heldout"]) and np.isfinite(p["val"])
    assert rep["kept"] is not None
    text = (quick_run / "PAPER-quick.md").read_text()
    assert pc.SECTION in text and "QUICK" in text
    assert (quick_run / "chargpt-quick.cdnn").stat().st_size == \
        rep["points"][rep["kept"]]["file_bytes"]


def test_docs_example_generates_text_without_torch(quick_run):
    model = str(quick_run / "chargpt-quick.cdnn")
    code = ("import runpy, sys; sys.argv = ['generate_text.py', '--model', sys.argv[1], "
            "'--prompt', 'import ', '--chars', '20', '--seed', '3']; "
            f"runpy.run_path({EXAMPLE!r}, run_name='__main__'); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    r = subprocess.run([sys.executable, "-c", code, model], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout[:-1]  # print's newline
    assert text.startswith("import ") and len(text) == len("import ") + 20
    again = subprocess.run([sys.executable, "-c", code, model], capture_output=True, text=True,
                           timeout=120, cwd=ROOT)
    assert again.stdout == r.stdout  # seeded sampling


def test_latency_benchmark_feeds_the_gpt_token_ids(tmp_path):
    from _common import SHAPES, example_input, gpt_recipe
    x = example_input("gpt", 3)
    assert x.dtype == np.int64 and x.shape == (3,) + SHAPES["gpt"] == (3, pc.CONTEXT)
    assert 0 <= x.min() and x.max() < pc.VOCAB
    assert example_input("lenet-5", 2).dtype == np.float32
    recipe, said = gpt_recipe(str(tmp_path / "missing.cdnn"))
    assert recipe["kind:linear"]["density"] == 0.3 and "no chargpt.cdnn" in said
