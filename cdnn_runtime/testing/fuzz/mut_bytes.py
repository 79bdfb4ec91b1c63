"""Mutators of classes "byte" (bit flips, truncations, insertions... with no checksum
repaired, so most stop at a CRC) and "preamble" (a preamble field changed, the preamble CRC
recomputed; or the header's DEFLATE storage damaged with every checksum fixed)."""

from ...constants import MAX_HEADER_BYTES, PREAMBLE_SIZE
from ...reader import crc32
from .. import craft
from .layout import layout, section_spans
from .mutate import Skip, dumps, mutator

_SIZES = [1, 2, 7, 8, 63, 64]


def _pos(m, d):
    """A random position, in the preamble or header three times in ten."""
    if not d:
        raise Skip("empty file")
    if m.rng.random() < 0.3:
        hl = craft.preamble_field(d, "header_length") if len(d) >= 32 else 0
        return m.rng.randrange(min(len(d), PREAMBLE_SIZE + min(hl, len(d))))
    return m.rng.randrange(len(d))


def _change_bytes(m, count, change):
    """The file with change(d, p) made at `count` random positions p; (bytes, positions)."""
    d = bytearray(m.data)
    where = []
    for _ in range(count):
        p = _pos(m, d)
        change(d, p)
        where.append(p)
    return bytes(d), where


@mutator("byte", 3)
def byte_flip(m):
    n = m.choice([1, 1, 1, 2, 3, 8])

    def flip(d, p):
        d[p] ^= 1 << m.rng.randrange(8)
    out, where = _change_bytes(m, n, flip)
    m.note(f"flip {n} bit(s) at {where}")
    return out


@mutator("byte", 2)
def byte_set(m):
    def overwrite(d, p):
        d[p] = m.choice([0x00, 0xFF, 0x7F, 0x80, 0x01, m.rng.randrange(256)])
    out, where = _change_bytes(m, m.choice([1, 1, 2, 4]), overwrite)
    m.note(f"set byte(s) at {where}")
    return out


def _truncated(m, cut):
    m.note(f"truncate to {cut} of {len(m.data)} bytes")
    return m.data[:cut]


@mutator("byte", 2)
def byte_truncate_boundary(m):
    b = m.choice(layout(m.data))
    return _truncated(m, max(0, min(len(m.data) - 1, b + m.choice([-1, 0, 0, 1]))))


@mutator("byte", 1)
def byte_truncate_random(m):
    return _truncated(m, m.rng.randrange(len(m.data)))


def _spot(m, end):
    """A boundary of the layout or any position below end, and a run length."""
    p = m.choice(layout(m.data)) if m.rng.random() < 0.5 else m.rng.randrange(end)
    return p, m.choice(_SIZES)


@mutator("byte", 1.5)
def byte_insert(m):
    p, n = _spot(m, len(m.data) + 1)
    ins = m.zeros_or_random(n, 0.4)
    m.note(f"insert {n} byte(s) at {p}")
    return m.data[:p] + ins + m.data[p:]


@mutator("byte", 1.5)
def byte_delete(m):
    p, n = _spot(m, len(m.data))
    m.note(f"delete {n} byte(s) at {p}")
    return m.data[:p] + m.data[p + n:]


@mutator("byte", 1)
def byte_swap_sections(m):
    spans = section_spans(m.data)
    if len(spans) < 2:
        raise Skip("fewer than two sections")
    i, j = sorted(m.rng.sample(range(len(spans)), 2))
    (a, la), (b, lb) = spans[i], spans[j]
    d = m.data
    out = d[:a] + d[b:b + lb] + d[a + la:b] + d[a:a + la] + d[b + lb:]
    m.note(f"swap the bytes of sections {i} and {j} (no checksum fixed)")
    return out


@mutator("byte", 0.5)
def byte_splice(m):
    other = m.seeds[m.choice(sorted(m.seeds))]
    n = min(len(other), len(m.data))
    a = m.rng.randrange(n)
    b = min(n, a + m.choice([8, 64, 512, n]))
    m.note(f"splice bytes {a}-{b} of another seed")
    return m.data[:a] + other[a:b] + m.data[b:]


@mutator("byte", 0.5)
def byte_append(m):
    n = m.choice([1, 8, 63, 64, 65, 128])
    tail = m.zeros_or_random(n, 0.5)
    m.note(f"append {n} byte(s)")
    return m.data + tail


@mutator("byte", 0.5)
def byte_magic(m):
    d = m.data
    variants = {
        "lf->crlf": d[:4] + b"\r\r\n" + d[6:],
        "crlf->lf": d[:4] + b"\n\x1a\n" + d[8:],
        "last lf->crlf": d[:7] + b"\r\n" + d[8:],
        "high bit lost": bytes([d[0] & 0x7F]) + d[1:],
        "png": b"\x89PNG\r\n\x1a\n" + d[8:],
        "zeros": b"\0" * 8 + d[8:],
        "text": b"CDNN\n" + d[5:],
        "short": d[:8],
        "empty": b"",
        "magic only": d[:4],
    }
    k = m.choice(sorted(variants))
    m.note(f"magic: {k}")
    return variants[k]


@mutator("byte", 1)
def byte_padding(m):
    """A nonzero byte in zero padding (header padding or between sections): no checksum
    covers padding, so this reaches the padding checks with every CRC intact."""
    gaps = []
    try:
        pos = PREAMBLE_SIZE + craft.preamble_field(m.data, "header_length")
        for start, length in section_spans(m.data) + [(len(m.data), 0)]:
            if start > pos:
                gaps.append((pos, start))
            pos = max(pos, start + length)
    except Exception:
        pass
    if not gaps:
        raise Skip("no padding")
    a, b = m.choice(gaps)
    p = m.rng.randrange(a, b)
    d = bytearray(m.data)
    d[p] = m.rng.randrange(1, 256)
    m.note(f"nonzero padding byte at {p}")
    return bytes(d)


# ---- preamble class ------------------------------------------------------------------------

_FIELDS = ("file_length", "flags", "header_crc", "header_length", "header_offset", "version")


@mutator("preamble", 3)
def pre_field(m):
    if len(m.data) < PREAMBLE_SIZE:
        raise Skip("no preamble")
    name = m.choice(_FIELDS + ("reserved",))
    if name == "reserved":
        d = bytearray(m.data)
        p = m.rng.randrange(craft.PREAMBLE_FIELDS["reserved"][0],
                            craft.PREAMBLE_FIELDS["preamble_crc"][0])
        d[p] = m.rng.randrange(1, 256)
        m.note(f"reserved byte {p} set")
        return craft.fix_preamble_crc(d)
    cur = craft.preamble_field(m.data, name)
    top = 2**32 - 1 if craft.PREAMBLE_FIELDS[name][1] == "<I" else 2**64 - 1
    n = len(m.data)
    cands = [0, 1, 2, cur - 1, cur + 1, cur + 64, cur - 64, cur * 2, top, top - 1, 2**31,
             2**32, 2**53, 2**63, n, n + 1, n - 1, MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1,
             64, 63, 65, 128]
    v = m.choice([c for c in cands if 0 <= c <= top and c != cur])
    m.note(f"preamble {name}: {cur} -> {v}")
    return craft.with_preamble(m.data, **{name: v})


def _damage(m, kind, packed, head):
    if kind == "flip":
        p = m.rng.randrange(len(packed))
        packed[p] ^= 1 << m.rng.randrange(8)
        return packed
    if kind == "cut":
        return packed[:m.rng.randrange(len(packed))]
    if kind == "trail":
        return packed + bytes(m.rng.randrange(256) for _ in range(m.rng.randrange(1, 9)))
    return bytearray(craft.deflate_header(head + b" " * MAX_HEADER_BYTES))


@mutator("preamble", 2)
def header_deflate(m):
    """Store the header deflated (a meaning-preserving rewrite), or damage a deflated header
    (flipped or cut bytes, trailing garbage, a stream that inflates past the cap) with every
    checksum fixed, so that the reader's inflate checks are reached."""
    header, sections = m.split()
    head = dumps(header)
    kind = m.choice(["rewrite", "flip", "cut", "trail", "bomb", "plain-flagged"])
    if kind == "rewrite":
        m.same = "all"
        m.note("header stored deflated / plain swapped")
        return craft.assemble(header, sections, deflate=not craft.is_deflated(m.data))
    if kind == "plain-flagged":
        m.note("plain header with the deflate flag set")
        return craft.assemble(header, sections, header_bytes=head, flags=1)
    packed = _damage(m, kind, bytearray(craft.deflate_header(head)), head)
    m.note(f"deflated header damaged: {kind}")
    return craft.assemble(header, sections, header_bytes=bytes(packed), flags=1)


@mutator("preamble", 1)
def pre_header_length_consistent(m):
    """header_length shrunk or grown with file_length moved the same way, CRCs fixed."""
    if len(m.data) < PREAMBLE_SIZE:
        raise Skip("no preamble")
    d = bytearray(m.data)
    hl = craft.preamble_field(d, "header_length")
    delta = m.choice([-1, 1, -64, 64, -hl])
    new = hl + delta
    if new < 0:
        raise Skip("negative")
    if delta > 0:
        d[PREAMBLE_SIZE + hl:PREAMBLE_SIZE + hl] = b" " * delta
    else:
        del d[PREAMBLE_SIZE + new:PREAMBLE_SIZE + hl]
    head_crc = crc32(bytes(d[PREAMBLE_SIZE:PREAMBLE_SIZE + new]))
    m.note(f"header_length {hl} -> {new} (file and header CRC follow)")
    return craft.with_preamble(d, header_length=new, file_length=len(d), header_crc=head_crc)
