"""Huffman codec throughput: decode (1 and 2 threads), encode, coded size vs entropy.

Usage::

    python benchmarks/bench_huffman.py            # 1M and 20M symbol streams, 7 repeats
    python benchmarks/bench_huffman.py --quick    # tiny run (checks the script works)

Writes benchmarks/results/huffman.json and benchmarks/results/huffman.md and prints the
markdown table. Decode writes into a preallocated output array (``out=``), as the
runtime does when it decodes into a tensor buffer.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

import numba
import numpy as np

from _common import RESULTS
from cdnn_runtime import huffman as H
from cdnn_runtime.constants import DEFAULT_CHUNK_SYMBOLS
from cdnn_runtime.report import entropy_bits
from cdnn_runtime.timing import summarize, time_calls


def make_stream(kind: str, n: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """(symbols, alphabet size) of a synthetic stream."""
    rng = np.random.default_rng(seed)
    if kind == "gauss32":
        # Weight-sharing indices: 32 evenly spaced centroids over +-3 sigma of a Gaussian.
        x = rng.standard_normal(n)
        sym = np.clip(np.floor((x + 3.0) / 6.0 * 32), 0, 31).astype(np.uint8)
        return sym, 32
    if kind == "uniform256":
        return rng.integers(0, 256, n, dtype=np.uint8), 256
    raise ValueError(kind)


def rate_stats(n: int, fn, repeats: int) -> dict:
    """Millions of symbols per second over `repeats` calls fn() after one warm-up call
    (compilation, page faults): at the median, slowest and fastest call."""
    s = summarize(time_calls(fn, repeats=repeats, warmup=1))
    return {"median": n / s["median_ms"] / 1e3, "min": n / s["max_ms"] / 1e3,
            "max": n / s["min_ms"] / 1e3}


def bench_stream(kind: str, n: int, threads: list[int], repeats: int, chunk: int) -> list[dict]:
    sym, alphabet = make_stream(kind, n)
    freqs = H.symbol_frequencies(sym, alphabet)
    lengths = H.code_lengths(freqs)
    payload, offsets, bits = H.encode(sym, lengths, chunk)
    out = np.empty(n, dtype=np.uint8)
    H.decode(payload, bits, lengths, n, chunk, offsets, out=out)
    if not np.array_equal(out, sym):
        raise SystemExit(f"round trip failed for {kind} n={n}")
    rows = []
    for t in threads:
        numba.set_num_threads(t)
        dec = rate_stats(
            n, lambda: H.decode(payload, bits, lengths, n, chunk, offsets, out=out), repeats
        )
        enc = rate_stats(n, lambda: H.encode(sym, lengths, chunk), max(3, repeats // 2))
        rows.append(
            {
                "distribution": kind,
                "alphabet": alphabet,
                "symbols": n,
                "chunk_symbols": chunk,
                "threads": t,
                "max_code_length": int(lengths.max()),
                "coded_bits_per_symbol": bits / n,
                "entropy_bits_per_symbol": entropy_bits(sym),
                "decode_msym_s": dec,
                "encode_msym_s": enc,
                "repeats": repeats,
                "parallel_decode": t > 1 and n >= H.PARALLEL_MIN_SYMBOLS and n > chunk,
            }
        )
    return rows


def markdown(rows: list[dict], env: dict) -> str:
    lines = [
        "# Huffman codec benchmark",
        "",
        f"{env['date']}, {env['machine']}, {env['cpu_count']} logical CPUs, "
        f"numba {env['numba']} ({env['threading_layer']} threading layer), "
        f"numpy {env['numpy']}, python {env['python']}.",
        f"Mode: {env['mode']}. Median (min-max) over {rows[0]['repeats'] if rows else 0} "
        "timed runs after one warm-up; decode into a preallocated array. "
        f"Streams of fewer than {H.PARALLEL_MIN_SYMBOLS:,} symbols are decoded on one thread.",
        "",
        "| stream | symbols | threads | decode M sym/s | encode M sym/s | bits/sym | "
        "entropy | max len |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        d, e = r["decode_msym_s"], r["encode_msym_s"]
        lines.append(
            f"| {r['distribution']} | {r['symbols']:,} | {r['threads']} | "
            f"{d['median']:.0f} ({d['min']:.0f}-{d['max']:.0f}) | "
            f"{e['median']:.0f} ({e['min']:.0f}-{e['max']:.0f}) | "
            f"{r['coded_bits_per_symbol']:.3f} | {r['entropy_bits_per_symbol']:.3f} | "
            f"{r['max_code_length']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny run: 500k symbols, 3 repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 7)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="stream lengths (default 1000000 20000000)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--chunk", type=int, default=DEFAULT_CHUNK_SYMBOLS)
    ap.add_argument("--out", type=Path, default=Path(RESULTS))
    args = ap.parse_args(argv)

    sizes = args.sizes or ([500_000] if args.quick else [1_000_000, 20_000_000])
    repeats = args.repeats or (3 if args.quick else 7)
    threads = [t for t in args.threads if 1 <= t <= numba.config.NUMBA_NUM_THREADS]

    rows = []
    for kind in ("gauss32", "uniform256"):
        for n in sizes:
            rows.extend(bench_stream(kind, n, threads, repeats, args.chunk))
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numba": numba.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threading_layer": numba.threading_layer(),
        "mode": "quick" if args.quick else "full",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "huffman.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    md = markdown(rows, env)
    (args.out / "huffman.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
