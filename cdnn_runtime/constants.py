"""Single source of truth for the .cdnn format: magic, version, layout, limits, enums.

spec/cdnn-format.md describes every value defined here; change both together.
"""

import struct

import numpy as np

#: 8 bytes. 0x89 catches 7-bit transports, CR LF catches text-mode line-ending changes,
#: 0x1A stops `type` on DOS, the final LF catches LF -> CR LF conversion.
MAGIC = b"\x89CDN\r\n\x1a\n"

#: Newest format version this implementation writes, and the versions its reader accepts.
#: A writer stamps a file with the lowest version that holds all it uses (BASE_VERSION when
#: no op of a later version appears), so files of older ops stay readable by older readers.
FORMAT_VERSION = 3
SUPPORTED_VERSIONS = (2, 3)
BASE_VERSION = 2

#: Fixed-size binary preamble at offset 0: magic, version, flags, header offset, header length,
#: file length, header CRC, 16 reserved bytes, preamble CRC (over bytes 0..59).
PREAMBLE_SIZE = 64
PREAMBLE = struct.Struct("<8sIIQQQI16sI")
assert PREAMBLE.size == PREAMBLE_SIZE
#: Every section starts at a multiple of this (enough for any element type's alignment).
ALIGNMENT = 8

#: Preamble flag bit 0: the header is stored compressed with raw DEFLATE (RFC 1951).
FLAG_HEADER_DEFLATE = 1
#: Flag bits a reader of this version understands; any other set bit is an error.
KNOWN_FLAGS = FLAG_HEADER_DEFLATE

#: Hard cap on the JSON header, stored and (when compressed) decompressed, checked before it
#: is read or inflated.
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Default cap on the bytes a reader may allocate for decoded tensors of one file.
DEFAULT_MAX_DECODED_BYTES = 8 * 1024**3
#: Largest integer any count, size or offset in the header may take (exact in IEEE double).
MAX_INT = 2**53 - 1
#: Nesting depth allowed in the JSON header (metadata included).
MAX_JSON_DEPTH = 64
#: Most dimensions a tensor or graph value may have.
MAX_RANK = 8
#: Most tensors in one file, and sections (a sparse tensor has four: codebook and three streams).
MAX_TENSORS = 1_000_000
MAX_SECTIONS = 4 * MAX_TENSORS
#: Longest name (in characters) of a tensor, a graph value or a node.
MAX_NAME_LENGTH = 256
#: Most inputs of one node (`cat`), and most inputs or outputs of the graph.
MAX_NODE_INPUTS = 64
#: Most outputs of one node (`split`, `chunk`, `unbind`; version 3).
MAX_NODE_OUTPUTS = 64
#: Most nodes in one graph.
MAX_GRAPH_NODES = 100_000

#: Huffman: longest code, largest alphabet.
HUFFMAN_MAX_CODE_LENGTH = 16
HUFFMAN_MAX_ALPHABET = 256
#: Default number of symbols per independently decodable Huffman chunk.
DEFAULT_CHUNK_SYMBOLS = 65536
#: Bounds on chunk size a reader accepts.
MIN_CHUNK_SYMBOLS = 1
MAX_CHUNK_SYMBOLS = 2**24

#: Bit-packed streams: value widths allowed.
PACKED_MAX_BITS = 32

#: sparse_codebook tensors.
MAX_CODEBOOK_SIZE = 256
#: Most columns a layout with uint16 column indices can address (indices 0..65535); wider
#: matrices keep int32 column indices in memory.
MAX_UINT16_COLUMNS = 1 << 16
MIN_GAP_BITS = 1
MAX_GAP_BITS = 8

#: Raw tensor dtypes: name in the header -> little-endian numpy dtype.
RAW_DTYPES = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "uint8": np.dtype("u1"),
}

ENCODING_RAW = "raw"
ENCODING_SPARSE_CODEBOOK = "sparse_codebook"
ENCODINGS = (ENCODING_RAW, ENCODING_SPARSE_CODEBOOK)

CODING_PACKED = "packed"
CODING_HUFFMAN = "huffman"
CODINGS = (CODING_PACKED, CODING_HUFFMAN)

#: Graph input dtypes -> the format version that adds them (version 3: integer token ids and
#: positions, read by `embedding`).
VALUE_DTYPES = {"float32": BASE_VERSION, "int64": 3, "int32": 3}
