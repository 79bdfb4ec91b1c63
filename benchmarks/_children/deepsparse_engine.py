"""Child of the latency benchmark, run by the python of a DeepSparse venv (numpy<2): compile an
ONNX file for one batch size, then time engine.run on request.

usage: python deepsparse_engine.py ONNX BATCH THREADS INPUT.npy OUTPUT.npy. Saves the output for
INPUT to OUTPUT, says "ready" (or the error), then for each line "run N" on stdin times N calls
and answers their seconds; "quit" ends it. Answers are JSON lines starting with "@@". It runs
outside the project's environment, so it times its calls itself.
"""
import json
import sys
import time

import numpy as np


def say(obj):
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    path, inp, out = sys.argv[1], sys.argv[4], sys.argv[5]
    batch, threads = int(sys.argv[2]), int(sys.argv[3])
    try:
        import deepsparse
        from deepsparse import compile_model
        t = time.perf_counter()
        eng = compile_model(path, batch_size=batch, num_cores=threads)
        compile_s = time.perf_counter() - t
        x = np.load(inp)
        np.save(out, eng.run([x])[0])
    except Exception as exc:  # noqa: BLE001 - the parent reports it and skips this peer
        say({"error": "%s: %s" % (type(exc).__name__, exc)})
        return
    say({"ready": True, "version": deepsparse.__version__, "compile_s": compile_s,
         "numpy": np.__version__})
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        ts = []
        for _ in range(int(cmd[1])):
            t = time.perf_counter()
            eng.run([x])
            ts.append(time.perf_counter() - t)
        say(ts)


if __name__ == "__main__":
    main()
