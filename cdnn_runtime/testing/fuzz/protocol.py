"""The runner's pipe protocol: pickled messages, each preceded by its length (8 bytes)."""

import pickle
import struct

_LENGTH = struct.Struct("<Q")


def send(fh, obj):
    b = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_LENGTH.pack(len(b)) + b)
    fh.flush()


def recv(fh):
    """The next message from a blocking file, or None at its end."""
    head = fh.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (n,) = _LENGTH.unpack(head)
    return pickle.loads(fh.read(n))


def parse(buf):
    """(message, rest of buf) of a buffer read so far, or (None, buf) while incomplete."""
    if len(buf) < _LENGTH.size:
        return None, buf
    (n,) = _LENGTH.unpack_from(buf)
    end = _LENGTH.size + n
    if len(buf) < end:
        return None, buf
    return pickle.loads(buf[_LENGTH.size:end]), buf[end:]
