"""Mutation fuzzing of .cdnn loading, decoding and running.

A case is named by its id ``"SEED-INDEX"`` and re-created from it alone (`make_case`, in
cases.py): a seed file (seeds.py) and one or two mutations (the ``mut_*`` modules, on the
machinery of mutate.py) in three classes: ``byte`` (no checksum repaired, so most stop at a
CRC), ``preamble`` (a preamble field changed, its CRC recomputed) and ``struct`` (the file
taken apart with ``craft.split``, its header or sections changed and every checksum
recomputed, so that the deep checks are reached). `Executor` (execute.py) loads, decodes and
runs a file and names its outcome; `Runner` (runner.py) runs cases in worker processes so
that a crash or a hang is counted and the run goes on; `fuzz` and `replay` (summary.py) are
what tests/test_fuzz.py and benchmarks/fuzz.py call.
"""

from .cases import CLASS_WEIGHTS, Case, make_case, parse_case_id
from .execute import FAILURES, OUTCOMES, Executor, WrongResult, feed, session_class
from .mutate import MUTATORS, Mut, Skip, mutator
from .runner import Runner
from .seeds import SEED_WEIGHTS, VECTOR_NAMES, build_seeds
from .summary import Summary, fuzz, replay

__all__ = ["CLASS_WEIGHTS", "Case", "Executor", "FAILURES", "MUTATORS", "Mut", "OUTCOMES",
           "Runner", "SEED_WEIGHTS", "Skip", "Summary", "VECTOR_NAMES", "WrongResult",
           "build_seeds", "feed", "fuzz", "make_case", "mutator", "parse_case_id", "replay",
           "session_class"]
