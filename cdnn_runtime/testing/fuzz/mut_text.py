"""Mutators of class "struct" that edit the metadata and the header's JSON text itself
(every checksum fixed): nesting past the limit, duplicate keys, NaN, odd number forms, bad
UTF-8; and meaning-preserving rewrites (other metadata, other valid JSON of the same header)."""

import re

from ...constants import MAX_JSON_DEPTH
from .. import craft
from .mutate import dumps, mutator


def _with_metadata_text(m, h, secs, text):
    h = dict(h)
    h.pop("metadata", None)
    h["sections"] = craft.section_table(secs)
    head = dumps(h)
    head = head[:-1] + b',"metadata":' + text + b"}"
    return m.pack(h, secs, head=head)


@mutator("struct", 1.5)
def meta_deep(m):
    h, secs = m.split()
    d = MAX_JSON_DEPTH
    depth = m.choice([d - 4, d - 3, d - 2, d - 1, d, d + 1, d + 2, 100, 1000, 100_000])
    kind = m.choice(["list", "dict"])
    if kind == "list":
        inner = b"[" * depth + b"]" * depth
    else:
        inner = b'{"a":' * depth + b"1" + b"}" * depth
    m.note(f"metadata nested {depth} deep ({kind})")
    return _with_metadata_text(m, h, secs, b'{"deep":' + inner + b"}")


#: op -> (key of the metadata, its new value): edits a reader must accept.
_SAME_METADATA = {
    "unknown-key": ("x-fuzz", lambda m: {"k": [1, 2.5, None, True, "s"]}),
    "recipe": ("recipe", lambda m: m.choice([[], None, 3, "text", {"a": {"b": [{"c": 1}]}}])),
    "unicode": ("source_model", lambda m: "\u00e9\u540d\U0001F600"),
    "long": ("extra", lambda m: "x" * m.choice([1000, 100_000])),
    "extra": ("extra", lambda m: {"accuracy": 0.75, "list": list(range(50))}),
    "floats": ("extra", lambda m: [1e-300, 1e300, -0.0, 5e-324]),
}


@mutator("struct", 1.5)
def meta_same(m):
    """Metadata edits a reader must accept: unknown keys, any recipe, non-ASCII text."""
    h, secs = m.split()
    md = h.setdefault("metadata", {})
    op = m.choice(["unknown-key", "recipe", "unicode", "long", "extra", "drop-all", "floats"])
    if op == "drop-all":
        h.pop("metadata")
    else:
        key, new = _SAME_METADATA[op]
        md[key] = new(m)
    m.same = "content"
    m.note(f"metadata: {op}")
    return m.pack(h, secs, ensure_ascii=m.rng.random() < 0.5)


#: op -> (edit the metadata or the whole header, which key, its new value).
_BAD_METADATA = {
    "producer-int": ("metadata", "producer", lambda m: 1),
    "producer-null": ("metadata", "producer_version", lambda m: None),
    "sha-list": ("metadata", "source_sha256", lambda m: ["ab"]),
    "not-object": ("header", "metadata", lambda m: m.choice([[], "x", 1, True])),
    "null": ("header", "metadata", lambda m: None),
}


@mutator("struct", 1)
def meta_bad(m):
    h, secs = m.split()
    op = m.choice(_BAD_METADATA)
    md = h.setdefault("metadata", {})
    where, key, new = _BAD_METADATA[op]
    (md if where == "metadata" else h)[key] = new(m)
    m.note(f"metadata: {op}")
    return m.pack(h, secs)


_NUM = re.compile(rb"(?<=[:\[,])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?=[,\]}])")
_STR = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _dup_key(m, text, op):
    starts = [mt.start() for mt in re.finditer(rb'\{"', text)]
    p = m.choice(starts)
    key = re.match(rb'\{("(?:[^"\\]|\\.)*"):', text[p:]).group(1)
    val = m.choice([b"null", b"0", b'"x"', b"[]"])
    text = text[:p + 1] + key + b":" + val + b"," + text[p + 1:]
    return text, f"dup-key {key.decode(errors='replace')[:40]}"


def _number_forms(v):
    return [f.encode() for f in (v + ".0", v + "e0", v + "E+0", "-0", "0.0", "1e999", "-1e999",
                                 "1e-999", "0" + v, "+" + v, "." + v, "0x" + v, v + "_0",
                                 v + ".", "1.0e1", "-" + v)]


_NUMBERS = {
    "nan": lambda v: [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"],
    "number-form": _number_forms,
    "big-int": lambda v: [b"9" * 4300, b"9" * 4301, b"1" + b"0" * 5000, b"-" + b"9" * 5000,
                          b"1" + b"0" * 400, b"1" + b"0" * 400 + b".0", b"1e400"],
}


def _number(m, text, op):
    """A number of the text replaced by NaN, another spelling, or a huge one."""
    mt = m.choice(list(_NUM.finditer(text)))
    new = m.choice(_NUMBERS[op](mt.group().decode()))
    text = text[:mt.start()] + new + text[mt.end():]
    more = "..." if len(new) > 20 else ""
    return text, f"{op} {mt.group()[:20].decode()} -> {new[:20].decode()}{more}"


_INSERTS = {
    "unicode": [b"\\ud800", b"\\udfff", b"\\u0000", b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"\\u00e9",
                b"\\uD83D\\uDE00", b"\\uFFFF", b"\\u"],
    "bad-utf8": [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xc3", b"\xf8\x88\x80\x80", b"\x80"],
    "control-char": [b"\x00", b"\n", b"\t", b"\x1f", b"\\x41", b"\\q"],
}


def _in_string(m, text, op):
    """Escapes, raw UTF-8, invalid UTF-8 or control characters put inside a string."""
    mt = m.choice(list(_STR.finditer(text)))
    p = mt.start() + 1 + m.rng.randrange(max(1, len(mt.group()) - 1))
    p = min(p, mt.end() - 1)
    ins = m.choice(_INSERTS[op])
    if text[p - 1:p] == b"\\":
        p -= 1
    text = text[:p] + ins + text[p:]
    return text, f"{op} {ins!r} in {mt.group()[:30].decode(errors='replace')}"


def _long_string(m, text, op):
    mt = m.choice(list(_STR.finditer(text)))
    long = b'"' + b"x" * m.choice([257, 5000, 1 << 20]) + b'"'
    return text[:mt.start()] + long + text[mt.end():], op


def _whole(edit):
    """A text edit that needs no position, as a (text, note) edit."""
    return lambda m, text, op: (edit(m, text), op)


_TEXT_EDITS = {
    "dup-key": _dup_key,
    **dict.fromkeys(_NUMBERS, _number),
    **dict.fromkeys(_INSERTS, _in_string),
    "bom": _whole(lambda m, text: b"\xef\xbb\xbf" + text),
    "truncate": _whole(lambda m, text: text[:m.rng.randrange(len(text))]),
    "trailing": _whole(lambda m, text: text + m.choice([b"x", b"{}", b"\0", b",", b"]",
                                                         b"\xff"])),
    "comment": _whole(lambda m, text: text[:1] + b"/* c */" + text[1:]),
    "single-quotes": _whole(lambda m, text: text.replace(b'"', b"'", 2)),
    "long-string": _long_string,
    "toplevel": _whole(lambda m, text: m.choice([b"[]", b'""', b"1", b"null", b"{}", b"true",
                                                 b"[" + text + b"]"])),
    "empty": _whole(lambda m, text: b""),
    "deep-array": _whole(lambda m, text: text[:-1] + b',"deep":' + b"[" * 200_000
                         + b"]" * 200_000 + b"}"),
}


@mutator("struct", 4)
def json_text(m):
    """Edits of the header's JSON text (all checksums fixed)."""
    h, secs = m.split(table=True)
    op = m.choice(["dup-key", "dup-key", "nan", "number-form", "number-form", "big-int",
                   "unicode", "bad-utf8", "bom", "truncate", "trailing", "comment",
                   "single-quotes", "long-string", "toplevel", "empty", "control-char",
                   "deep-array"])
    text, op = _TEXT_EDITS[op](m, dumps(h), op)
    m.note(f"header text: {op}")
    return m.pack(h, secs, head=text)


@mutator("struct", 2)
def json_same(m):
    """The same header as other valid JSON: whitespace, key order, escapes."""
    h, secs = m.split(table=True)
    op = m.choice(["indent", "spaces", "key-order", "whitespace-around", "escapes",
                   "ensure-ascii-off", "all"])
    ops = ["indent", "spaces", "key-order", "whitespace-around", "escapes"] \
        if op == "all" else [op]
    kw = {}
    obj = h
    if "key-order" in ops:
        def shuffled(o):
            if isinstance(o, dict):
                items = list(o.items())
                m.rng.shuffle(items)
                return {k: shuffled(v) for k, v in items}
            if isinstance(o, list):
                return [shuffled(v) for v in o]
            return o
        obj = shuffled(h)
        kw["sort_keys"] = False
    if "indent" in ops:
        kw["indent"] = m.choice([1, 2, "\t"])
    if "spaces" in ops:
        kw["separators"] = (" , ", " : ")
    if "ensure-ascii-off" in ops:
        kw["ensure_ascii"] = False
    text = dumps(obj, **kw)
    if "whitespace-around" in ops:
        text = b" \n\t\r" + text + b"\r\n "
    if "escapes" in ops:
        text = text.replace(b'"name"', b'"\\u006eame"').replace(b'"op"', b'"o\\u0070"')
        text = text.replace(b'"float32"', b'"float\\u0033\\u0032"')
    m.same = "all"
    m.note(f"header re-serialized: {op}")
    return m.pack(h, secs, head=text)
