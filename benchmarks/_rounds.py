"""Timing several runtimes in one process in interleaved rounds, so that machine noise hits all
of them alike, and checking their outputs against a reference."""

import time

import numpy as np

from cdnn_runtime.timing import summarize

REWARM_BELOW_S = 0.05  # runtimes faster than this get one untimed call before each timed one


def warm_up(peer, x, quick):
    """Untimed calls; returns the time of one call (estimated from the last ones)."""
    first = peer.timed(x, 1)[0]
    if first > 2.0:
        return first
    ts = peer.timed(x, 1 if quick else 2)
    while sum(ts) < 0.3 and len(ts) < 20:
        ts += peer.timed(x, 1)
    return summarize(ts)["median_ms"] / 1e3


def settle(limit_s=0.3, window_s=0.01, quiet_s=0.001):
    """Wait until this process's threads stop spinning: after a run, onnxruntime's workers
    spin for tens of ms and OpenMP's (torch, numba) for some ms, and on 2 cores a spinning
    thread of one runtime would take a core from the next. Returns the seconds waited."""
    t0 = time.perf_counter()
    last = time.process_time()
    while time.perf_counter() - t0 < limit_s:
        time.sleep(window_s)
        c = time.process_time()
        if c - last < quiet_s:
            break
        last = c
    return time.perf_counter() - t0


def round_robin(peers, x, rounds, est):
    """`rounds` rounds; in each, every runtime in turn (the order rotating): wait for the
    previous one's threads to go quiet, one untimed call if it is a fast one, one timed call."""
    samples = {p.key: [] for p in peers}
    waited = []
    n = len(peers)
    for r in range(rounds):
        for p in peers[r % n:] + peers[:r % n]:
            waited.append(settle())
            if est[p.key] < REWARM_BELOW_S:
                p.timed(x, 1)
            samples[p.key] += p.timed(x, 1)
    return samples, waited


def compare(ref, y):
    """Largest absolute and relative difference of `y` from `ref`, and top-1 agreement."""
    ref, y = ref.reshape(ref.shape[0], -1), y.reshape(y.shape[0], -1)
    diff = float(np.max(np.abs(ref - y))) if ref.size else 0.0
    scale = float(np.max(np.abs(ref))) or 1.0
    return {"max_abs_diff": diff, "max_rel_diff": diff / scale,
            "top1_agree": float(np.mean(ref.argmax(1) == y.argmax(1)))}
