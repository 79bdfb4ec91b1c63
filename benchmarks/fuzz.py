"""Mutation fuzzing of .cdnn loading, decoding and running (see cdnn_runtime.testing.fuzz).

Usage::

    python benchmarks/fuzz.py --cases 100000 --seed 1 --jobs 2   # prints progress and a table
    python benchmarks/fuzz.py --replay 1-4711                    # one case, in-process, traceback
    python benchmarks/fuzz.py --replay 1-4711 --save case.cdnn   # ... and keep the file

Cases run in worker processes, so a crash (segfault) or a hang is counted and the run goes on.
Writes benchmarks/results/fuzz.json: counts per outcome, per mutation kind, per seed file,
where files were rejected, and every failing case with what is needed to replay it. Exit
status 1 when any case crashed, hung, raised a non-CdnnError exception or decoded wrongly.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

from cdnn_runtime.testing import fuzz

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000, help="number of cases (default 10000)")
    ap.add_argument("--seed", type=int, default=1, help="fuzz seed (default 1)")
    ap.add_argument("--start", type=int, default=0, help="first case index (default 0)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds before a case counts as a hang (default 10)")
    ap.add_argument("--no-session", action="store_true",
                    help="load and decode only; never build an InferenceSession")
    ap.add_argument("--replay", metavar="CASE_ID",
                    help="re-create one case (SEED-INDEX) and run it here with a traceback")
    ap.add_argument("--save", metavar="PATH", help="with --replay: write the case's file")
    ap.add_argument("--out", default=str(RESULTS / "fuzz.json"),
                    help="where to write the JSON summary (default benchmarks/results/fuzz.json)")
    ap.add_argument("--progress", type=float, default=5.0,
                    help="seconds between progress lines (default 5)")
    args = ap.parse_args(argv)

    if args.replay:
        res = fuzz.replay(args.replay, save=args.save, use_session=not args.no_session)
        return 0 if res["outcome"] in ("ok", "rejected") else 1

    last = [0.0]

    def progress(s, elapsed):
        if elapsed - last[0] < args.progress and s.cases < args.cases:
            return
        last[0] = elapsed
        counts = " ".join(f"{o}={s.outcomes.get(o, 0)}" for o in fuzz.OUTCOMES)
        print(f"[{s.cases}/{args.cases}] {elapsed:6.0f} s {s.cases / max(elapsed, 1e-9):5.0f}/s "
              f"{counts}", flush=True)

    print(f"fuzzing {args.cases} cases from {args.seed}-{args.start} with {args.jobs} "
          f"worker(s), {args.timeout:g} s timeout", flush=True)
    summary = fuzz.fuzz(args.seed, args.cases, jobs=args.jobs, timeout=args.timeout,
                           start=args.start, progress=progress,
                           use_session=not args.no_session)
    print(summary.table())
    out = summary.to_json()
    out["command"] = " ".join(["python", "benchmarks/fuzz.py"] + (argv or sys.argv[1:]))
    out["date"] = datetime.date.today().isoformat()
    out["platform"] = {"python": platform.python_version(), "machine": platform.machine(),
                       "cpus": os.cpu_count()}
    try:
        import numba
        import numpy
        out["platform"].update(numpy=numpy.__version__, numba=numba.__version__)
    except ImportError:
        pass
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"wrote {path}")
    if summary.failures:
        print(f"replay a failure with: python benchmarks/fuzz.py --replay "
              f"{summary.failures[0]['id']}")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
