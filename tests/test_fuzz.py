"""Mutation fuzzing: loading, decoding and running a damaged or hostile file either works
(with a self-consistent result) or raises a CdnnError, and never crashes, hangs or raises
anything else. The generator and runner live in cdnn_runtime.testing.fuzz; `python
benchmarks/fuzz.py` runs longer campaigns and replays a case by id (`--replay SEED-INDEX`)."""

import numpy as np
import pytest

from cdnn_runtime.graph import OPS
from cdnn_runtime.huffman import PARALLEL_MIN_SYMBOLS
from cdnn_runtime.reader import read
from cdnn_runtime.testing import fuzz

FUZZ_SEED = 20261128
CASES = 2000


@pytest.fixture(scope="module")
def seeds():
    return fuzz.build_seeds()


@pytest.fixture(scope="module")
def summary(seeds):
    return fuzz.fuzz(FUZZ_SEED, CASES, jobs=2, timeout=10.0, seeds=seeds)


def _describe(failures, limit=25):
    lines = []
    for f in failures[:limit]:
        lines.append(f"{f['id']} [{f['outcome']}] seed={f['seed']} {'+'.join(f['kinds'])}: "
                     f"{f.get('exc') or ''} {(f.get('msg') or '')[:200]}\n"
                     f"    mutation: {(f.get('detail') or '')[:200]}\n"
                     f"    at: {f.get('site') or f.get('stage') or '?'}")
    more = len(failures) - limit
    if more > 0:
        lines.append(f"... and {more} more")
    lines.append("replay one with: python benchmarks/fuzz.py --replay CASE_ID")
    return "\n".join(lines)


def test_no_crash_hang_or_foreign_exception(summary):
    assert summary.cases == CASES
    bad = [f for f in summary.failures if f["outcome"] in ("crash", "hang")]
    assert not bad, "the runtime crashed or hung:\n" + _describe(bad)
    bad = [f for f in summary.failures if f["outcome"] == "other"]
    assert not bad, "exceptions outside CdnnError:\n" + _describe(bad)


def test_loaded_files_decode_consistently(summary):
    bad = [f for f in summary.failures if f["outcome"] == "wrong"]
    assert not bad, "files that loaded but decoded wrongly, or valid rewrites that were " \
                    "rejected or changed meaning:\n" + _describe(bad)
    bad = [f for f in summary.failures if f["outcome"] == "gen-error"]
    assert not bad, "the mutation generator failed:\n" + _describe(bad)


def test_cases_reach_the_deep_checks(summary):
    n = summary.cases
    # Structure-aware mutations with every checksum valid get past the CRCs.
    assert summary.struct_crc_ok >= 0.30 * n, summary.table()
    # Some still load (and are then decoded and run), so decoding sees hostile values.
    assert summary.outcomes["ok"] >= 0.05 * n, summary.table()
    assert summary.struct_crc_ok_ok >= 0.03 * n, summary.table()
    assert summary.same_checked >= 0.03 * n, summary.table()
    sites = set(summary.sites)
    for deep in ("reader._validate_sparse", "streams.decode_stream", "sparse.gaps_to_csr",
                 "reader.entries", "graph.validate_graph", "reader._check_zero"):
        assert deep in sites, f"no case was rejected by {deep}:\n{summary.table()}"
    assert len(summary.by_kind) >= 0.9 * len(fuzz.MUTATORS), summary.table()


def test_cases_are_reproducible_from_their_id(seeds):
    for index in (0, 1, 77, 1234):
        a = fuzz.make_case(seeds, FUZZ_SEED, index)
        b = fuzz.make_case(seeds, *fuzz.parse_case_id(a.id))
        assert (a.data, a.kinds, a.detail, a.seed) == (b.data, b.kinds, b.detail, b.seed)
    datas = {fuzz.make_case(seeds, FUZZ_SEED, i).data for i in range(20)}
    assert len(datas) >= 18


def test_seeds_load_and_exercise_the_parallel_decoder(seeds):
    ex = fuzz.Executor(seeds, use_session=False)
    for name, data in seeds.items():
        assert ex.execute(data)["outcome"] == "ok", name
    f = read(seeds["big_parallel"])
    codes = f.tensor("big.weight").desc["codes"]
    assert codes["coding"] == "huffman" and codes["count"] >= PARALLEL_MIN_SYMBOLS
    assert codes["count"] > codes["chunk_symbols"]
    g = read(seeds["graph_ops"])
    ops = {n["op"] for n in g.graph["nodes"]}
    assert ops == set(OPS)
    fc1 = g.tensor("fc1.weight").desc
    assert fc1["entries"] >= 1000 and fc1["codes"]["coding"] == "huffman"


def test_session_runs_the_seed_graphs(seeds):
    cls, why = fuzz.session_class()
    if cls is None:
        pytest.skip(why)
    for name, data in seeds.items():
        f = read(data)
        if f.graph is None:
            continue
        sess = cls(data)
        outs = sess.run(None, fuzz.feed(f.graph))
        assert len(outs) == len(f.graph["outputs"]), name
        assert all(np.all(np.isfinite(o)) for o in outs), name


def test_runner_counts_crashes_and_hangs_and_goes_on(seeds):
    small = {k: seeds[k] for k in ("tiny_graph", "sparse_fillers")}
    msgs = [(("selftest", "segfault"), "segfault"), (("case", 5, 0), "5-0"),
            (("selftest", "hang"), "hang"), (("case", 5, 1), "5-1"),
            (("selftest", "abort"), "abort"), (("case", 5, 2), "5-2")]
    with fuzz.Runner(small, jobs=1, timeout=3.0, use_session=False) as r:
        results = {res["id"]: res for res in r.run(iter(msgs))}
        assert r.restarts == 3
    assert results["segfault"]["outcome"] == "crash"
    assert "SIGSEGV" in results["segfault"]["msg"]
    assert "Segmentation fault" in results["segfault"]["log"]
    assert results["hang"]["outcome"] == "hang"
    assert results["abort"]["outcome"] == "crash" and "SIGABRT" in results["abort"]["msg"]
    for i in range(3):
        assert results[f"5-{i}"]["outcome"] in ("ok", "rejected"), results[f"5-{i}"]
