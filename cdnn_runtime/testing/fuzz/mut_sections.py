"""Mutators of class "struct" that edit the section table, the sections' bytes and the
tensors' references to them (every checksum recomputed unless the table itself is edited)."""

from ...reader import align
from .. import craft
from .mutate import (
    Skip,
    edit_by_table,
    mutator,
    ref_get,
    ref_set,
    renumber_after_drop,
    section_owner,
    section_refs,
    spelled_edit,
)


def _sections(m, at_least):
    """(header, sections) of a file with at least that many sections."""
    h, secs = m.split()
    if len(secs) < at_least:
        raise Skip("no sections" if at_least == 1 else "fewer than two sections")
    return h, secs


def _one_section(m):
    """(header, sections, index of a random section)."""
    h, secs = _sections(m, 1)
    return h, secs, m.rng.randrange(len(secs))


def _swap_entries(m, table, i, end):
    j = m.rng.randrange(len(table))
    table[i], table[j] = table[j], table[i]


#: Section-table edits other than those spelled by their names ("length+1", "crc^1"...).
_TABLE_EDITS = {
    "offset=other": lambda m, table, i, end: table[i].update(
        offset=table[m.rng.randrange(len(table))]["offset"]),
    "offset=end": lambda m, table, i, end: table[i].update(
        offset=align(end) + m.choice([0, 64, 2**20])),
    "offset=huge": lambda m, table, i, end: table[i].update(
        offset=m.choice([2**53 - 64, 2**53, 2**63, 2**64])),
    "length=huge": lambda m, table, i, end: table[i].update(
        length=m.choice([2**31, 2**32, 2**53 - 1, 2**63])),
    "swap": _swap_entries,
    "drop": lambda m, table, i, end: table.pop(i),
    "dup": lambda m, table, i, end: table.insert(i, dict(table[i])),
    "append-empty": lambda m, table, i, end: table.append(
        {"offset": align(end), "length": 0, "crc32": 0}),
    "empty": lambda m, table, i, end: table.clear(),
    "reverse": lambda m, table, i, end: table.reverse(),
}


@mutator("struct", 2.5)
def sec_table(m):
    h, secs = m.split()
    table = craft.section_table(secs)
    if not table:
        raise Skip("no sections")
    end = table[-1]["offset"] + table[-1]["length"]
    i = m.rng.randrange(len(table))
    op = m.choice(["offset=other", "offset+64", "offset-64", "offset+1", "offset=end",
                   "offset=huge", "length+1", "length-1", "length+64", "length=0",
                   "length=huge", "crc^1", "crc=0", "swap", "drop", "dup", "append-empty",
                   "empty", "reverse"])
    if not edit_by_table(op, _TABLE_EDITS, m, table, i, end):
        spelled_edit(table[i], op, {"crc": "crc32"})
    h["sections"] = table
    m.note(f"section table: {op} (entry {i})")
    return m.pack(h, secs, keep_table=True)


def _set_random_bytes(m, s):
    for _ in range(m.choice([1, 1, 2, 8])):
        s[m.rng.randrange(len(s))] = m.rng.randrange(256)
    return s


def _flip_random_bits(m, s):
    for _ in range(m.choice([1, 2, 3])):
        s[m.rng.randrange(len(s))] ^= 1 << m.rng.randrange(8)
    return s


def _random_run(m, s):
    a = m.rng.randrange(len(s))
    b = min(len(s), a + m.choice([4, 8, 16, 64]))
    s[a:b] = m.rng.randbytes(b - a)
    return s


def _flip_last_byte(m, s):
    s[-1] ^= 1 << m.rng.randrange(8)
    return s


_PAYLOAD_EDITS = {"bytes": _set_random_bytes, "bits": _flip_random_bits, "run": _random_run,
                  "zeros": lambda m, s: bytes(len(s)), "ones": lambda m, s: b"\xff" * len(s),
                  "last": _flip_last_byte}


@mutator("struct", 4)
def sec_payload(m):
    """Random bytes inside one section, its CRC recomputed."""
    h, secs = m.split()
    i = m.choice([i for i, s in enumerate(secs) if s])
    op = m.choice(["bytes", "bytes", "bits", "run", "zeros", "ones", "last"])
    secs[i] = bytes(_PAYLOAD_EDITS[op](m, bytearray(secs[i])))
    m.note(f"section {i} ({section_owner(h, i)}): {op}, CRC fixed")
    return m.pack(h, secs)


@mutator("struct", 1.5)
def sec_resize(m):
    h, secs, i = _one_section(m)
    n = m.choice([1, 7, 8, 64, len(secs[i])])
    if m.rng.random() < 0.5:
        secs[i] = secs[i] + m.zeros_or_random(n, 0.5)
        m.note(f"section {i} ({section_owner(h, i)}): {n} byte(s) appended")
    else:
        secs[i] = secs[i][:max(0, len(secs[i]) - n)]
        m.note(f"section {i} ({section_owner(h, i)}): {n} byte(s) cut")
    return m.pack(h, secs)


@mutator("struct", 1)
def sec_drop(m):
    h, secs, i = _one_section(m)
    del secs[i]
    renumber = m.rng.random() < 0.6
    if renumber:
        renumber_after_drop(h, i)
    m.note(f"drop section {i}{', references renumbered' if renumber else ''}")
    return m.pack(h, secs)


@mutator("struct", 0.7)
def sec_dup(m):
    h, secs, i = _one_section(m)
    secs.append(secs[i])
    m.note(f"section {i} duplicated at the end (unused)")
    return m.pack(h, secs)


@mutator("struct", 1)
def sec_swap(m):
    h, secs = _sections(m, 2)
    i, j = m.rng.sample(range(len(secs)), 2)
    secs[i], secs[j] = secs[j], secs[i]
    m.note(f"swap sections {i} and {j}, references unchanged, CRCs fixed")
    return m.pack(h, secs)


@mutator("struct", 1.5)
def sec_permute_same(m):
    """Sections reordered and every reference remapped: the same file in another order."""
    h, secs = _sections(m, 2)
    perm = list(range(len(secs)))
    m.rng.shuffle(perm)
    new = [None] * len(secs)
    for old, pos in enumerate(perm):
        new[pos] = secs[old]
    for ref in section_refs(h):
        ref_set(ref, perm[ref_get(ref)])
    m.same = "all"
    m.note(f"sections permuted {perm[:12]}{'...' if len(perm) > 12 else ''}, refs remapped")
    return m.pack(h, new)


@mutator("struct", 2)
def sec_ref(m):
    h, secs = m.split()
    refs = section_refs(h)
    ref = m.choice(refs)
    cur = ref_get(ref)
    op = m.choice(["other", "other", "swap", "len", "-1", "huge", "float", "bool"])

    def swap():
        other = m.choice(refs)
        v = ref_get(other)
        ref_set(other, cur)
        return v
    new = {"other": lambda: m.rng.randrange(len(secs)) if secs else 0, "swap": swap,
           "len": lambda: len(secs), "-1": lambda: -1, "float": lambda: float(cur),
           "huge": lambda: m.choice([2**31, 2**53, 2**63]), "bool": lambda: True}
    v = new[op]()
    ref_set(ref, v)
    m.note(f"{ref[0].get('name')!r}.{ref[1] or 'section'}: section {cur} -> {v!r} ({op})")
    return m.pack(h, secs)
