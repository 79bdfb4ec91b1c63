"""Taking .cdnn files apart and putting (possibly broken) ones together, with valid checksums
wherever a test wants a deeper check to be reached; and the golden files of spec/vectors."""

import json
import re
import struct
import zlib
from importlib import util
from pathlib import Path

from ..constants import (
    BASE_VERSION,
    FLAG_HEADER_DEFLATE,
    MAGIC,
    PREAMBLE,
    PREAMBLE_SIZE,
    SUPPORTED_VERSIONS,
)
from ..reader import align, crc32
from ..writer import deflate_header

__all__ = ["PREAMBLE_FIELDS", "VECTORS", "assemble", "deflate_header", "fix_preamble_crc",
           "header_bytes", "is_deflated", "plain_header", "preamble_field", "section_table",
           "one_node_graph", "split", "vector", "vector_makers", "vector_names", "vectors_dir",
           "with_preamble"]

_FIELD_NAMES = ("magic", "version", "flags", "header_offset", "header_length", "file_length",
                "header_crc", "reserved", "preamble_crc")


def _preamble_fields():
    codes = re.findall(r"\d*[a-zA-Z]", PREAMBLE.format.lstrip("<"))
    assert len(codes) == len(_FIELD_NAMES)
    return {name: (struct.calcsize("<" + "".join(codes[:i])), "<" + code)
            for i, (name, code) in enumerate(zip(_FIELD_NAMES, codes))}


#: name -> (byte offset, struct format) of every preamble field, read off constants.PREAMBLE.
PREAMBLE_FIELDS = _preamble_fields()
#: The preamble checksum covers the bytes before it.
_CRC_AT = PREAMBLE_FIELDS["preamble_crc"][0]


def preamble_field(data, name):
    """One preamble field of a file (which must be at least 64 bytes long)."""
    offset, fmt = PREAMBLE_FIELDS[name]
    return struct.unpack_from(fmt, data, offset)[0]


def is_deflated(data):
    """True when the preamble says the header is stored deflated (flag bit 0)."""
    return bool(preamble_field(data, "flags") & FLAG_HEADER_DEFLATE)


def fix_preamble_crc(data):
    """Recompute the preamble checksum after a deliberate change to the preamble."""
    data = bytearray(data)
    data[_CRC_AT:_CRC_AT + 4] = struct.pack("<I", crc32(bytes(data[:_CRC_AT])))
    return bytes(data)


def with_preamble(data, **fields):
    """The file with preamble fields set to other values, its preamble checksum fixed."""
    data = bytearray(data)
    for name, value in fields.items():
        offset, fmt = PREAMBLE_FIELDS[name]
        struct.pack_into(fmt, data, offset, value)
    return fix_preamble_crc(data)


def header_bytes(data):
    """The JSON bytes of a file's header, inflated when the preamble says it is deflated."""
    raw = bytes(data[PREAMBLE_SIZE:PREAMBLE_SIZE + preamble_field(data, "header_length")])
    if is_deflated(data):
        raw = zlib.decompress(raw, -15)
    return raw


def split(data):
    """(header dict, [section bytes]) of a valid file."""
    header = json.loads(header_bytes(data))
    start = align(PREAMBLE_SIZE + preamble_field(data, "header_length"))
    sections = [data[start + s["offset"]:start + s["offset"] + s["length"]]
                for s in header["sections"]]
    return header, sections


def section_table(sections):
    """The section table that lays out `sections` one after the other, aligned."""
    table, pos = [], 0
    for s in sections:
        table.append({"offset": pos, "length": len(s), "crc32": crc32(s)})
        pos = align(pos + len(s))
    return table


def assemble(header, sections, *, header_bytes=None, fix_sections=True, deflate=False, **pre):
    """Build a file; recompute the section table unless told not to; override preamble fields.
    With deflate, the header is stored deflated and the preamble flag set."""
    if fix_sections:
        header = dict(header, sections=section_table(sections))
    head = header_bytes if header_bytes is not None else json.dumps(
        header, sort_keys=True, separators=(",", ":")).encode()
    if deflate:
        head = deflate_header(head)
    start = align(PREAMBLE_SIZE + len(head))
    body = bytearray()
    for s, entry in zip(sections, header["sections"]):
        body += b"\0" * (entry["offset"] - len(body))
        body += s
    total = start + len(body)
    version = header.get("format_version")  # the preamble agrees with a valid header
    fields = dict(magic=MAGIC, version=version if version in SUPPORTED_VERSIONS
                  and type(version) is int else BASE_VERSION,
                  flags=FLAG_HEADER_DEFLATE if deflate else 0, header_offset=PREAMBLE_SIZE,
                  header_length=len(head), file_length=total, header_crc=crc32(head),
                  reserved=b"\0" * 16)
    fields.update({k: v for k, v in pre.items() if k != "preamble_crc"})
    packed = PREAMBLE.pack(*fields.values(), 0)[:_CRC_AT]
    crc = pre.get("preamble_crc", crc32(packed))
    out = packed + struct.pack("<I", crc) + head
    out += b"\0" * (start - len(out)) + bytes(body)
    return out


def plain_header(data):
    """The same file with its header stored as plain JSON (as the writer lays it out): what a
    deflated file is, byte for byte, whatever DEFLATE implementation compressed it."""
    header, sections = split(data)
    return assemble(header, sections, header_bytes=header_bytes(data), fix_sections=False)


# ---- golden files ------------------------------------------------------------------------

#: spec/vectors of the repository this package is part of (not installed with the package).
VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"


def vectors_dir():
    """VECTORS, or a FileNotFoundError that says why it is missing."""
    if not (VECTORS / "make_vectors.py").is_file():
        raise FileNotFoundError(
            f"the golden files are not at {VECTORS}: spec/vectors/ belongs to the cdnn "
            "repository and is not installed with the package; use cdnn_runtime from a "
            "checkout of the repository (pip install -e .) to test against them")
    return VECTORS


def vector_names():
    """Sorted names of the golden files (spec/vectors/NAME.cdnn)."""
    return sorted(p.stem for p in vectors_dir().glob("*.cdnn"))


def vector(name):
    """The bytes of golden file spec/vectors/NAME.cdnn."""
    return (vectors_dir() / f"{name}.cdnn").read_bytes()


def vector_makers():
    """{name: function returning the Writer of that golden file}, from make_vectors.py."""
    spec = util.spec_from_file_location("make_vectors", vectors_dir() / "make_vectors.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VECTORS


def one_node_graph(op, input_shape, params, *, dtype="float32", name=None, attrs=None):
    """A graph of one node `op` from input "x" (`dtype`, `input_shape`) to output "y"."""
    node = {"name": name or op, "op": op, "inputs": ["x"], "outputs": ["y"], "params": params}
    if attrs:
        node["attrs"] = attrs
    return {"inputs": [{"name": "x", "dtype": dtype, "shape": list(input_shape)}],
            "nodes": [node], "outputs": [{"name": "y"}]}
