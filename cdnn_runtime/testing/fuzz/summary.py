"""A fuzz run's counts (per outcome, mutation kind, class and seed, where files were
rejected) and failing cases; `fuzz` runs a campaign, `replay` one case in this process."""

import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .cases import make_case, parse_case_id
from .execute import FAILURES, OUTCOMES, Executor
from .runner import Runner
from .seeds import build_seeds

_FAILURE_KEYS = ("id", "outcome", "seed", "kinds", "cls", "detail", "exc", "msg", "site",
                 "stage", "returncode", "tb", "log", "same")


def _counts(by):
    return {k: dict(v) for k, v in sorted(by.items())}


@dataclass
class Summary:
    fuzz_seed: int
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    by_kind: dict = field(default_factory=lambda: defaultdict(Counter))
    by_class: dict = field(default_factory=lambda: defaultdict(Counter))
    by_seed: dict = field(default_factory=lambda: defaultdict(Counter))
    sites: Counter = field(default_factory=Counter)
    stages: Counter = field(default_factory=Counter)
    crc_ok: int = 0
    struct_crc_ok: int = 0
    struct_crc_ok_ok: int = 0
    same_checked: int = 0
    run_notes: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    slowest: list = field(default_factory=list)
    seconds: float = 0.0
    session: object = None
    restarts: int = 0

    def add(self, r):
        self.cases += 1
        o = r["outcome"]
        self.outcomes[o] += 1
        for k in r.get("kinds") or ["?"]:
            self.by_kind[k][o] += 1
        self.by_class[r.get("cls", "?")][o] += 1
        self.by_seed[r.get("seed", "?")][o] += 1
        if o in ("rejected", "other") and r.get("site"):
            self.sites[r["site"]] += 1
        if o in ("rejected", "other", "ok", "wrong"):
            self.stages[f"{o}@{r.get('stage')}"] += 1
        if r.get("crc_ok"):
            self.crc_ok += 1
            if r.get("cls") == "struct":
                self.struct_crc_ok += 1
                if o == "ok":
                    self.struct_crc_ok_ok += 1
        if r.get("same") is not None:
            self.same_checked += 1
        if r.get("run"):
            self.run_notes[r["run"].split(":")[0]] += 1
        if o in FAILURES:
            self.failures.append({k: r.get(k) for k in _FAILURE_KEYS})
        self.slowest.append((r.get("time") or 0.0, r.get("id")))
        if len(self.slowest) > 1000:
            self.slowest = sorted(self.slowest, reverse=True)[:10]

    @property
    def failure_ids(self):
        return [f["id"] for f in self.failures]

    def to_json(self):
        return {
            "fuzz_seed": self.fuzz_seed, "cases": self.cases, "seconds": round(self.seconds, 2),
            "cases_per_second": round(self.cases / self.seconds, 1) if self.seconds else None,
            "outcomes": {o: self.outcomes.get(o, 0) for o in OUTCOMES},
            "checksums_valid": self.crc_ok,
            "struct_with_valid_checksums": self.struct_crc_ok,
            "struct_with_valid_checksums_loaded": self.struct_crc_ok_ok,
            "meaning_preserving_checked": self.same_checked,
            "by_class": _counts(self.by_class),
            "by_kind": _counts(self.by_kind),
            "by_seed": _counts(self.by_seed),
            "stages": dict(self.stages.most_common()),
            "rejection_sites": dict(self.sites.most_common()),
            "run_notes": dict(self.run_notes),
            "session": self.session or "available",
            "worker_restarts": self.restarts,
            "slowest": [{"id": i, "seconds": round(t, 3)}
                        for t, i in sorted(self.slowest, reverse=True)[:10]],
            "failures": self.failures,
        }

    def _outcome_table(self):
        head = ["kind"] + list(OUTCOMES)
        rows = [[label] + [str(v.get(o, 0)) for o in OUTCOMES] for label, v in
                sorted(self.by_kind.items())
                + [("class " + k, v) for k, v in sorted(self.by_class.items())]
                + [("total", self.outcomes)]]
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

        def fmt(r):
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths)))
        return [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]

    def table(self):
        tot = max(1, self.cases)
        lines = [
            f"{self.cases} cases in {self.seconds:.1f} s "
            f"({self.cases / max(self.seconds, 1e-9):.0f}/s), fuzz seed {self.fuzz_seed}",
            "outcomes: " + ", ".join(f"{o} {self.outcomes.get(o, 0)}" for o in OUTCOMES),
            f"checksums valid: {self.crc_ok} ({100 * self.crc_ok / tot:.0f}%); "
            f"structure-aware with valid checksums: {self.struct_crc_ok} "
            f"({100 * self.struct_crc_ok / tot:.0f}%), of which loaded: "
            f"{self.struct_crc_ok_ok}; meaning-preserving checked: {self.same_checked}",
            f"session: {self.session or 'available'}; worker restarts: {self.restarts}"]
        lines += self._outcome_table()
        lines.append("where files were rejected (innermost cdnn_runtime function):")
        lines += [f"  {n:6d}  {s}" for s, n in self.sites.most_common(25)]
        if self.failures:
            lines.append(f"FAILURES ({len(self.failures)}):")
            for f in self.failures[:40]:
                lines.append(f"  {f['id']}  {f['outcome']}  {f['seed']}  {'+'.join(f['kinds'])}"
                             f"  {f.get('exc') or ''}: {(f.get('msg') or '')[:160]}")
                lines.append(f"      {(f.get('detail') or '')[:200]}")
        return "\n".join(lines)


def fuzz(fuzz_seed, cases, *, jobs=2, timeout=10.0, start=0, seeds=None, progress=None,
         use_session=True):
    """Run cases start..start+cases-1 of fuzz_seed in worker processes; a Summary.
    progress(summary, seconds) is called after each case."""
    s = Summary(fuzz_seed)
    t0 = time.perf_counter()
    with Runner(seeds, jobs=jobs, timeout=timeout, use_session=use_session) as r:
        s.session = r.session_note
        for res in r.run_cases(fuzz_seed, range(start, start + cases)):
            s.add(res)
            if progress:
                progress(s, time.perf_counter() - t0)
        s.restarts = r.restarts
    s.seconds = time.perf_counter() - t0
    return s


def replay(case_id, *, seeds=None, save=None, use_session=True, out=sys.stdout):
    """Re-create one case and run it in this process, with a traceback on failure."""
    import faulthandler
    faulthandler.enable()
    seeds = seeds if seeds is not None else build_seeds()
    fuzz_seed, index = parse_case_id(case_id)
    case = make_case(seeds, fuzz_seed, index)
    print(f"case {case.id}: seed {case.seed}, {' + '.join(case.kinds)} ({case.cls}), "
          f"{len(case.data)} bytes, checksums {'valid' if case.crc_ok else 'broken'}"
          f"{', meaning kept: ' + case.same if case.same else ''}", file=out)
    print(f"  {case.detail}", file=out)
    if save:
        Path(save).write_bytes(case.data)
        print(f"  saved to {save}", file=out)
    ex = Executor(seeds, use_session=use_session)
    if ex.session_cls is None:
        print(f"  (no session step: {ex.session_note})", file=out)
    res = ex.execute(case.data, seed=case.seed, same=case.same, reraise=True)
    for k in ("outcome", "stage", "exc", "site", "msg", "run"):
        if res.get(k) is not None:
            print(f"  {k}: {res[k]}", file=out)
    return res
