"""Taking .cdnn files apart and putting (possibly broken) ones together, with valid checksums
wherever a test wants a deeper check to be reached."""

import json
import os
import struct
import zlib

from cdnn_runtime.constants import FLAG_HEADER_DEFLATE, FORMAT_VERSION, MAGIC, PREAMBLE_SIZE
from cdnn_runtime.reader import PREAMBLE, align, crc32
from cdnn_runtime.writer import deflate_header


def header_bytes(data):
    """The JSON bytes of a file's header, inflated when the preamble says it is deflated."""
    header_length = struct.unpack_from("<Q", data, 24)[0]
    raw = bytes(data[PREAMBLE_SIZE:PREAMBLE_SIZE + header_length])
    if struct.unpack_from("<I", data, 12)[0] & FLAG_HEADER_DEFLATE:
        raw = zlib.decompress(raw, -15)
    return raw


def split(data):
    """(header dict, [section bytes]) of a valid file."""
    header_length = struct.unpack_from("<Q", data, 24)[0]
    header = json.loads(header_bytes(data))
    start = align(PREAMBLE_SIZE + header_length)
    sections = [data[start + s["offset"]:start + s["offset"] + s["length"]]
                for s in header["sections"]]
    return header, sections


def assemble(header, sections, *, header_bytes=None, fix_sections=True, deflate=False, **pre):
    """Build a file; recompute the section table unless told not to; override preamble fields.
    With deflate, the header is stored deflated and the preamble flag set."""
    if fix_sections:
        table, pos = [], 0
        for s in sections:
            table.append({"offset": pos, "length": len(s), "crc32": crc32(s)})
            pos = align(pos + len(s))
        header = dict(header, sections=table)
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
    fields = dict(magic=MAGIC, version=FORMAT_VERSION,
                  flags=FLAG_HEADER_DEFLATE if deflate else 0, header_offset=PREAMBLE_SIZE,
                  header_length=len(head), file_length=total, header_crc=crc32(head),
                  reserved=b"\0" * 16)
    fields.update({k: v for k, v in pre.items() if k != "preamble_crc"})
    packed = PREAMBLE.pack(*fields.values(), 0)[:-4]
    crc = pre.get("preamble_crc", crc32(packed))
    out = packed + struct.pack("<I", crc) + head
    out += b"\0" * (start - len(out)) + bytes(body)
    return out


def fix_preamble_crc(data):
    """Recompute the preamble checksum after a deliberate change to the preamble."""
    data = bytearray(data)
    data[60:64] = struct.pack("<I", crc32(bytes(data[:60])))
    return bytes(data)


VECTORS = os.path.join(os.path.dirname(__file__), os.pardir, "spec", "vectors")


def vector(name):
    """The bytes of golden file spec/vectors/NAME.cdnn."""
    with open(os.path.join(VECTORS, name + ".cdnn"), "rb") as fh:
        return fh.read()
