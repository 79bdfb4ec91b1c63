"""Progress of `compress` on stderr: tqdm bars on a terminal, plain timed lines elsewhere."""

import os
import sys
import time


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _columns(stream):
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def count_layers(model):
    """Linear and convolution weights of a torch model, as compress will find them (by shape,
    which also works on an exported module): the number of steps of each per-layer stage."""
    return sum(1 for name, p in model.named_parameters()
               if name.rpartition(".")[2] == "weight" and p.dim() in (2, 3, 4))


class Progress:
    """Per-stage, per-layer progress of `compress` on stderr.

    A tqdm bar per stage when stderr is a terminal and tqdm is installed, plain lines
    otherwise (one per layer and stage, with the elapsed time), nothing when quiet. Called as
    `compress(..., progress=Progress(...))`; `stage(name)` marks a stage without layers.
    """

    def __init__(self, total=None, *, quiet=False, stream=None, use_tqdm=None):
        self.stream = stream or sys.stderr
        self.total = total or None
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.key = None
        self.count = 0
        self.bar = None
        self.tqdm = None
        if use_tqdm is None:
            use_tqdm = _isatty(self.stream) and _columns(self.stream) >= 40
        if not quiet and use_tqdm:
            try:
                from tqdm import tqdm
                self.tqdm = tqdm
            except ImportError:
                pass

    def _line(self, text):
        if not self.quiet:
            print(f"  [{time.perf_counter() - self.t0:6.1f} s] {text}", file=self.stream,
                  flush=True)

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def stage(self, name):
        self._close()
        self.key = None
        self._line(name)

    def __call__(self, stage, layer, step=0):
        if self.quiet:
            return
        key = (stage, step)
        label = stage + (f" (step {step + 1})" if step else "")
        if key != self.key:
            self._close()
            self.key, self.count = key, 0
            if self.tqdm is not None:
                self.bar = self.tqdm(total=self.total, desc=f"  {label}", unit="layer",
                                     file=self.stream, leave=True, dynamic_ncols=True)
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix_str(layer, refresh=False)
            self.bar.update(1)
        else:
            of = f"/{self.total}" if self.total else ""
            self._line(f"{label:<6} {self.count}{of} {layer}")
        if self.total and self.count == self.total and stage == "share":
            self.stage("encode")

    def close(self):
        self._close()
