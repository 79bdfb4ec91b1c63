"""Lenient views of a (possibly damaged) file's layout, for choosing where to mutate and for
telling whether a mutated file still has every checksum right. None of them raises."""

import json

from ...constants import PREAMBLE_SIZE
from ...reader import align, crc32
from ..craft import PREAMBLE_FIELDS, header_bytes, preamble_field


def _header_end(data):
    return PREAMBLE_SIZE + preamble_field(data, "header_length")


def _declared_sections(data):
    """(where the data starts, the section table the header declares); raises on a file
    whose header cannot be read."""
    return align(_header_end(data)), json.loads(header_bytes(data))["sections"]


def layout(data):
    """Interesting byte offsets of a file: preamble fields, header end, data start, section
    starts and ends."""
    marks = {offset for offset, _ in PREAMBLE_FIELDS.values()}
    marks |= {1, 7, PREAMBLE_SIZE - 1, PREAMBLE_SIZE, len(data) - 1}
    try:
        end = _header_end(data)
        if end <= len(data):
            marks |= {end, align(end)}
            start, table = _declared_sections(data)
            for s in table:
                marks.add(start + s["offset"])
                marks.add(start + s["offset"] + s["length"])
    except Exception:
        pass
    return sorted(m for m in marks if 0 <= m < len(data))


def section_spans(data):
    """[(start, length)] of the sections as the header declares them, or []."""
    try:
        start, table = _declared_sections(data)
        return [(start + s["offset"], s["length"]) for s in table
                if start + s["offset"] + s["length"] <= len(data)]
    except Exception:
        return []


def checksums_ok(data):
    """True when the preamble, header and every declared section match their CRC-32s (so
    that a reader gets past every checksum to the structural checks)."""
    try:
        crc_at = PREAMBLE_FIELDS["preamble_crc"][0]
        if len(data) < PREAMBLE_SIZE or crc32(data[:crc_at]) != preamble_field(
                data, "preamble_crc"):
            return False
        end = _header_end(data)
        if end > len(data) or crc32(data[PREAMBLE_SIZE:end]) != preamble_field(data,
                                                                                "header_crc"):
            return False
        start, table = _declared_sections(data)
        for s in table:
            a, b = start + s["offset"], start + s["offset"] + s["length"]
            if b > len(data) or crc32(data[a:b]) != s["crc32"]:
                return False
        return True
    except Exception:
        return False
