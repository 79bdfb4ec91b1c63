"""Running one file and classifying what happened (the outcome of a case).

=========== ===================================================================================
ok          loaded, every tensor decoded and self-consistent, the session built and ran (a
            ValueError or CdnnError from ``run`` on the generated input counts as ok)
rejected    a CdnnError subclass was raised while loading or decoding
crash       the worker process died (a signal such as SIGSEGV: an index no check stopped)
hang        no answer within the per-case timeout
other       any exception that is not a CdnnError (type, message and traceback are kept)
wrong       loaded, but the result breaks an invariant (a column past the column count, a
            code past the codebook, serial and parallel decoding disagree...), or a change
            that keeps the file's meaning (re-encoded streams, reordered sections, tensors
            or nodes, reformatted JSON) was rejected or changed the decoded content
gen-error   the mutation generator itself failed (a bug of this package, not of the runtime)
=========== ===================================================================================

`Executor` decides all but crash and hang, which the runner sees from outside.
"""

import copy
import hashlib
import json
import math
import time
import traceback

import numpy as np

from ...errors import CdnnError
from ...reader import read
from .cases import make_case
from .mutate import SECTION_KEYS

OUTCOMES = ("ok", "rejected", "crash", "hang", "other", "wrong", "gen-error")
FAILURES = ("crash", "hang", "other", "wrong", "gen-error")

#: Inputs larger than this (elements) are not run: a declared shape is not a reason to
#: allocate gigabytes in the fuzzer itself.
MAX_FEED_ELEMENTS = 1 << 20
#: Sparse tensors are densified (``CdnnFile.dense``) only up to this many elements.
MAX_DENSE_ELEMENTS = 1 << 22


class WrongResult(Exception):
    """A file loaded, but what it decoded to breaks an invariant."""


def _digest(*arrays):
    hsh = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        hsh.update(str((a.dtype.str, a.shape)).encode())
        hsh.update(a.tobytes())
    return hsh.hexdigest()


def _desc_key(t, section_bytes):
    """What determines a tensor's decoded content: its descriptor without section indices,
    and the bytes of its sections."""
    d = copy.deepcopy(t.desc)
    secs = []
    if "section" in d:
        secs.append(section_bytes(d.pop("section")))
    for k in SECTION_KEYS:
        if isinstance(d.get(k), dict) and "section" in d[k]:
            secs.append(section_bytes(d[k].pop("section")))
    return json.dumps(d, sort_keys=True) + "|" + "|".join(
        hashlib.sha1(bytes(s)).hexdigest() for s in secs)


def _check_sparse(t, s):
    """WrongResult unless a decoded sparse tensor keeps every invariant the kernels rely on."""
    d = t.desc
    rows, n_cols = d["rows"], d["cols"]
    rp, ci, codes, cb = s.row_ptr, s.col_idx, s.codes, s.codebook
    problems = []
    if rp.dtype != np.int64 or rp.shape != (rows + 1,):
        problems.append(f"row_ptr {rp.dtype}{rp.shape}, expected int64[{rows + 1}]")
    elif rp[0] != 0 or np.any(np.diff(rp) < 0) or rp[-1] != ci.size:
        problems.append("row_ptr not monotonic from 0 to nnz")
    if ci.size != d["nnz"] or codes.size != ci.size:
        problems.append(f"{ci.size} columns, {codes.size} codes for nnz {d['nnz']}")
    if ci.size and (int(ci.min()) < 0 or int(ci.max()) >= n_cols):
        problems.append(f"column index outside [0, {n_cols})")
    if cb.dtype != np.float32 or cb.size != d["codebook"]["size"] or not np.all(np.isfinite(cb)):
        problems.append("codebook has the wrong size or non-finite values")
    if codes.size and int(codes.max()) >= cb.size:
        problems.append("code past the codebook")
    fc = d["filler_code"]
    if fc is not None and codes.size and np.any(codes == fc):
        problems.append("a filler entry was kept")
    if not problems and ci.size and rp.shape == (rows + 1,):
        row_of = np.repeat(np.arange(rows), np.diff(rp))
        same_row = row_of[1:] == row_of[:-1]
        if np.any(np.diff(ci.astype(np.int64))[same_row] <= 0):
            problems.append("columns not strictly increasing within a row")
    if problems:
        raise WrongResult(f"tensor {t.name!r}: " + "; ".join(problems))


def feed(graph, seed=0):
    """Random inputs for a graph (batch 2): float32 normal, integer ids (int64, int32) in
    [0, 4), within any table of 4 rows; or None when one would be too large."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in graph["inputs"]:
        shape = [2 if d is None else d for d in spec["shape"]]
        if math.prod(shape) > MAX_FEED_ELEMENTS:
            return None
        if spec["dtype"] in ("int64", "int32"):
            inputs[spec["name"]] = rng.integers(0, 4, shape).astype(spec["dtype"])
        else:
            inputs[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
    return inputs


def _site(tb):
    """module.function of the innermost cdnn_runtime frame of a traceback."""
    site = "?"
    for frame in traceback.extract_tb(tb):
        fn = frame.filename.replace("\\", "/")
        if "/cdnn_runtime/" in fn:
            mod = fn.split("/cdnn_runtime/", 1)[1][:-3].replace("/", ".")
            site = f"{mod}.{frame.name}"
    return site


def session_class():
    """(InferenceSession, None), or (None, why not) while cdnn_runtime.session is missing
    or incomplete."""
    import importlib
    import importlib.util
    try:
        if importlib.util.find_spec("cdnn_runtime.session") is None:
            return None, "cdnn_runtime.session does not exist"
        mod = importlib.import_module("cdnn_runtime.session")
    except Exception as exc:
        return None, f"cdnn_runtime.session does not import: {type(exc).__name__}: {exc}"
    cls = getattr(mod, "InferenceSession", None)
    if cls is None:
        return None, "cdnn_runtime.session has no InferenceSession"
    return cls, None


def _same_outputs(ref, outs):
    return len(ref) == len(outs) and all(
        a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
        for a, b in zip(ref, outs))


class Executor:
    """Runs files; knows the seeds' decoded content to check unchanged tensors against."""

    def __init__(self, seeds, *, use_session=True):
        self.seeds = seeds
        self.session_cls, self.session_note = None, "turned off"
        self.ref_tensors = {}  # _desc_key -> digest
        self.ref_content = {}  # seed -> {"tensors", "graph", "metadata"}
        self.ref_outputs = {}  # seed -> outputs (or None)
        for name, data in seeds.items():
            res = self.execute(data, reference=True)
            if res["outcome"] != "ok":
                raise RuntimeError(f"seed {name} does not load: {res}")
            self.ref_content[name] = res["content"]
        if use_session:
            self.session_cls, self.session_note = session_class()
        if self.session_cls is not None:
            self._check_seed_sessions()

    def _check_seed_sessions(self):
        """Run every seed through the session once (reference outputs); turn the session
        step off, saying why, when a valid seed fails there."""
        self.session_note = None
        self.seed_session_failures = {}
        for name, data in self.seeds.items():
            res = self.execute(data, reference=True)
            if res["outcome"] != "ok":
                self.seed_session_failures[name] = f"{res.get('exc')}: {res.get('msg')}"
            self.ref_outputs[name] = res.get("outputs")
        if self.seed_session_failures:
            name, why = sorted(self.seed_session_failures.items())[0]
            self.session_cls = None
            self.session_note = (f"turned off: InferenceSession fails on the valid seed "
                                 f"{name} ({why[:300]})")

    def _decode(self, f, reference):
        """{tensor name: digest} of every tensor decoded and checked."""
        def section(i):
            a, n = f.sections[i]
            return f._data[a:a + n]

        content = {}
        for t in f.tensors:
            if t.encoding == "raw":
                arr = f.raw(t.name)
                if arr.shape != tuple(t.shape) or arr.dtype.kind not in "fiu":
                    raise WrongResult(f"raw {t.name!r} decoded to {arr.dtype}{arr.shape}")
                digest = _digest(arr)
            else:
                s = f.sparse(t.name, parallel=True)
                _check_sparse(t, s)
                s2 = f.sparse(t.name, parallel=False)
                digest = _digest(s.row_ptr, s.col_idx, s.codes, s.codebook)
                if digest != _digest(s2.row_ptr, s2.col_idx, s2.codes, s2.codebook):
                    raise WrongResult(f"tensor {t.name!r}: parallel and serial decoding "
                                      "differ")
                if math.prod(t.shape) <= MAX_DENSE_ELEMENTS:
                    dense = f.dense(t.name)
                    if dense.shape != tuple(t.shape) or np.count_nonzero(dense) > s.nnz:
                        raise WrongResult(f"tensor {t.name!r}: dense form is wrong")
            key = _desc_key(t, section)
            if reference:
                self.ref_tensors[key] = digest
            elif key in self.ref_tensors and self.ref_tensors[key] != digest:
                raise WrongResult(f"tensor {t.name!r}: same descriptor and bytes as in a "
                                  "seed, different content")
            content[t.name] = digest
        return content

    def _run(self, f, data, res, *, seed, same, reference):
        """Build a session and run it once on random inputs; res gets what happened."""
        sess = self.session_cls(data)
        res["stage"] = "run"
        inputs = feed(f.graph)
        if inputs is None:
            res["run"] = "input too large, not run"
            return
        try:
            outs = sess.run(None, inputs)
        except (CdnnError, ValueError) as exc:
            res["run"] = f"run rejected the input: {type(exc).__name__}: {exc}"[:300]
            return
        if len(outs) != len(f.graph["outputs"]) or not all(
                isinstance(o, np.ndarray) and o.dtype == np.float32 for o in outs):
            raise WrongResult("session outputs are not one float32 array per graph output")
        res["outputs"] = [np.asarray(o) for o in outs] if reference else None
        ref = self.ref_outputs.get(seed) if same is not None and seed is not None else None
        if ref is not None and not _same_outputs(ref, outs):
            raise WrongResult("a change that keeps the file's meaning changed the session's "
                              "outputs")

    def execute(self, data, *, seed=None, same=None, reraise=False, reference=False):
        """Load, decode, check and run one file; a dict with the outcome."""
        res = {"outcome": None, "stage": "read"}
        try:
            f = read(data)
            res["stage"] = "decode"
            tensors = self._decode(f, reference)
            graph = None if f.graph is None else dict(
                f.graph, nodes=sorted(f.graph["nodes"], key=lambda n: n["name"]))
            content = {"tensors": tensors, "graph": json.dumps(graph, sort_keys=True),
                       "metadata": json.dumps(f.metadata, sort_keys=True)}
            if same is not None and seed is not None:
                ref = self.ref_content[seed]
                keys = ("tensors", "graph", "metadata") if same == "all" else ("tensors", "graph")
                for k in keys:
                    if content[k] != ref[k]:
                        raise WrongResult(f"a change that keeps the file's meaning changed its "
                                          f"decoded {k}")
            res["content"] = content
            if f.graph is not None and self.session_cls is not None:
                res["stage"] = "session"
                self._run(f, data, res, seed=seed, same=same, reference=reference)
            res["outcome"] = "ok"
        except CdnnError as exc:
            if same is not None and seed is not None:
                res.update(outcome="wrong", exc=type(exc).__name__,
                           msg=f"a file with the meaning of seed {seed} was rejected: {exc}"[:500],
                           site=_site(exc.__traceback__))
            else:
                res.update(outcome="rejected", exc=type(exc).__name__, msg=str(exc)[:300],
                           site=_site(exc.__traceback__))
        except WrongResult as exc:
            res.update(outcome="wrong", exc="WrongResult", msg=str(exc)[:500])
        except Exception as exc:
            if reraise:
                raise
            res.update(outcome="other", exc=f"{type(exc).__module__}.{type(exc).__qualname__}",
                       msg=str(exc)[:500], site=_site(exc.__traceback__),
                       tb="".join(traceback.format_exception(exc))[-4000:])
        if not reference:
            res.pop("content", None)
            res.pop("outputs", None)
        return res

    def run_case(self, fuzz_seed, index, announce=None):
        """Make case f"{fuzz_seed}-{index}" and execute it; the result with the case's info
        (announce(info) is called before it runs, so that a crash can be attributed)."""
        t0 = time.perf_counter()
        try:
            case = make_case(self.seeds, fuzz_seed, index)
        except Exception as exc:
            return {"id": f"{fuzz_seed}-{index}", "outcome": "gen-error",
                    "exc": type(exc).__name__, "msg": str(exc)[:300],
                    "tb": traceback.format_exc()[-4000:], "kinds": [], "cls": "?",
                    "seed": "?", "detail": "", "crc_ok": False, "time": 0.0}
        info = {"id": case.id, "seed": case.seed, "kinds": case.kinds, "cls": case.cls,
                "detail": case.detail, "crc_ok": case.crc_ok, "same": case.same,
                "size": len(case.data)}
        if announce:
            announce(info)
        res = self.execute(case.data, seed=case.seed, same=case.same)
        res.update(info)
        res["time"] = time.perf_counter() - t0
        return res
