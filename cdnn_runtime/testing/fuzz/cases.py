"""Cases: a seed file and one or two mutations, all drawn from a random source seeded by the
case's id ("SEED-INDEX") alone, so that any case can be re-created from its id (as long as
the mutators and seed files are unchanged)."""

import random
from dataclasses import dataclass

from . import mut_bytes, mut_graph, mut_header, mut_sections, mut_streams, mut_tensors, mut_text
from .layout import checksums_ok
from .mutate import MUTATORS, Mut, Skip
from .seeds import SEED_WEIGHTS

#: Probability of each mutation class, then of stacking a second mutation on the first.
CLASS_WEIGHTS = {"byte": 0.24, "preamble": 0.06, "struct": 0.70}
STACK_PROBABILITY = 0.15

#: Every mutator, in the order cases draw from: module by module as listed here, each in the
#: order of its definitions. A case's id names the same case only while this order holds.
DRAW_ORDER = tuple(mu for module in (mut_bytes, mut_header, mut_sections, mut_tensors,
                                     mut_streams, mut_graph, mut_text)
                   for mu in MUTATORS.values() if mu.fn.__module__ == module.__name__)
assert len(DRAW_ORDER) == len(MUTATORS)


@dataclass
class Case:
    id: str
    seed: str
    kinds: list
    cls: str
    detail: str
    data: bytes
    same: object = None
    crc_ok: bool = False


def parse_case_id(case_id):
    fuzz_seed, index = str(case_id).rsplit("-", 1)
    return int(fuzz_seed), int(index)


def _pick_mutator(rng, cls=None, first=True):
    pool = [mu for mu in DRAW_ORDER
            if (cls is None or mu.cls == cls) and (first or not mu.first_only)]
    return rng.choices(pool, [mu.weight for mu in pool])[0]


def _mutate(rng, data, seed, seeds, cls, tries, first):
    """(mutator, Mut, bytes) of the first of `tries` drawn mutators that applies, or None.
    A stacked mutation (not first) may also fail on what the first one left."""
    for _ in range(tries):
        mu = _pick_mutator(rng, cls, first)
        m = Mut(rng, data, seed, seeds)
        try:
            return mu, m, mu.fn(m)
        except Skip:
            continue
        except Exception:
            if first:
                raise
    return None


def make_case(seeds, fuzz_seed, index):
    """The case named f"{fuzz_seed}-{index}": a seed file and one or two mutations."""
    case_id = f"{fuzz_seed}-{index}"
    rng = random.Random(f"cdnn-fuzz/{case_id}")
    names = [n for n in SEED_WEIGHTS if n in seeds]
    seed = rng.choices(names, [SEED_WEIGHTS[n] for n in names])[0]
    classes = sorted(CLASS_WEIGHTS)
    cls = rng.choices(classes, [CLASS_WEIGHTS[c] for c in classes])[0]
    done = _mutate(rng, seeds[seed], seed, seeds, cls, 50, first=True)
    if done is None:
        raise RuntimeError(f"case {case_id}: no {cls} mutation applies to {seed}")
    mu, m, data = done
    kinds, notes, same = [mu.name], list(m.notes), m.same
    if rng.random() < STACK_PROBABILITY:
        done = _mutate(rng, data, seed, seeds, None, 20, first=False)
        if done is not None:
            mu, m, data = done
            kinds.append(mu.name)
            notes += m.notes
            same = same if m.same is not None and same is not None else None
            if same is not None and m.same == "content":
                same = "content"
            if mu.cls != cls:
                cls = "mixed"
    return Case(case_id, seed, kinds, cls, "; ".join(notes), bytes(data), same,
                checksums_ok(data))
