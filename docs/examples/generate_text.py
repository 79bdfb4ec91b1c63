"""Generate Python-like text from the compressed character-level GPT with cdnn_runtime alone
(numpy and numba; torch is never imported).

The file (benchmarks/results/chargpt.cdnn, made by benchmarks/paper_chargpt.py) was traced on
windows of exactly 128 characters, so every step feeds 128: the text so far, cut to its last
128 characters, or padded on the left with newlines while it is shorter; the next character
comes from the logits of the last position. Its vocabulary is in the JSON file beside it
(chargpt.vocab.json: `chars[i]` has id `first_id + i`, every other character `other_id`).

usage: python docs/examples/generate_text.py [--model benchmarks/results/chargpt.cdnn]
       [--prompt "def "] [--chars 200] [--temperature 0.8] [--seed 0]
       (--temperature 0: greedy)
"""

import argparse
import json
import os

import numpy as np

from cdnn_runtime import InferenceSession

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "..", "..", "benchmarks", "results", "chargpt.cdnn")


class CharVocab:
    """Characters <-> ids, as the model was trained."""

    def __init__(self, spec):
        self.chars, self.first, self.other = spec["chars"], spec["first_id"], spec["other_id"]
        self.ids = {c: self.first + i for i, c in enumerate(self.chars)}
        self.context, self.input, self.pad = spec["context"], spec["input"], spec["pad"]

    def encode(self, text):
        return [self.ids.get(c, self.other) for c in text]

    def decode(self, ids):
        return "".join(self.chars[i - self.first] if i >= self.first else "?" for i in ids)


def generate(sess, vocab, prompt, n_chars, temperature=0.8, seed=0):
    """`prompt` followed by `n_chars` generated characters."""
    rng = np.random.default_rng(seed)
    ids = vocab.encode(prompt)
    pad = vocab.ids[vocab.pad]
    for _ in range(n_chars):
        window = ids[-vocab.context:]
        window = [pad] * (vocab.context - len(window)) + window
        x = np.array([window], dtype=np.int64)
        logits = sess.run(None, {vocab.input: x})[0][0, -1].astype(np.float64)
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            p = np.exp((logits - logits.max()) / temperature)
            nxt = int(rng.choice(len(p), p=p / p.sum()))
        ids.append(nxt)
    return vocab.decode(ids)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--vocab", default=None, help="default: the model's path with .vocab.json")
    ap.add_argument("--prompt", default="def ")
    ap.add_argument("--chars", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with open(args.vocab or os.path.splitext(args.model)[0] + ".vocab.json") as fh:
        vocab = CharVocab(json.load(fh))
    sess = InferenceSession(args.model)
    print(generate(sess, vocab, args.prompt, args.chars, args.temperature, args.seed))


if __name__ == "__main__":
    main()
