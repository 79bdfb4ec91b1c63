"""A fuzz worker process: `python -m cdnn_runtime.testing.fuzz.worker SEEDS_PICKLE` reads
("case", fuzz_seed, index) or ("selftest", what) messages on stdin and answers on stdout
(see runner.py), with its address space capped so that a runaway allocation fails here."""

import os
import pickle
import sys
import time

from .execute import Executor
from .protocol import recv, send

#: Address-space cap of a worker, so that a runaway allocation fails there (MemoryError)
#: rather than taking the machine's memory.
WORKER_MEMORY_BYTES = 3 * 1024**3

_SELFTEST_INFO = {"kinds": ["selftest"], "cls": "selftest", "seed": "-", "crc_ok": False}


def _selftest(what):
    """Deliberate failures, to test the runner itself."""
    if what == "segfault":
        import ctypes
        ctypes.c_int64.from_address(8).value
    elif what == "hang":
        while True:
            time.sleep(1)
    elif what == "abort":
        os.abort()
    return {"outcome": "ok"}


def worker_main(seeds_path):
    import faulthandler
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to the log, never into the protocol
    sys.stdout = sys.stderr
    faulthandler.enable()
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    with open(seeds_path, "rb") as fh:
        seeds = pickle.load(fh)
    ex = Executor(seeds, use_session=os.environ.get("CDNN_FUZZ_SESSION", "1") != "0")
    send(proto, {"ready": True, "session": ex.session_note})
    stdin = sys.stdin.buffer
    while True:
        msg = recv(stdin)
        if msg is None:
            return
        kind = msg[0]
        if kind == "case":
            _, fuzz_seed, index = msg
            print(f"case {fuzz_seed}-{index}", file=sys.stderr, flush=True)
            res = ex.run_case(fuzz_seed, index, announce=lambda i: send(proto, {"start": i}))
            send(proto, {"result": res})
        elif kind == "selftest":
            info = dict(_SELFTEST_INFO, id=msg[1], detail=msg[1])
            send(proto, {"start": info})
            res = _selftest(msg[1])
            res.update(info, time=0.0)
            send(proto, {"result": res})


if __name__ == "__main__":
    worker_main(sys.argv[1])
