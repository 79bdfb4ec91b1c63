"""Runs cases in long-lived worker processes (worker.py) fed through a pipe, so that a crash
or a hang costs one worker, which is restarted, and never the caller."""

import os
import pickle
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .protocol import parse, send
from .seeds import build_seeds

#: Where `python -m cdnn_runtime...` finds the cdnn_runtime this module belongs to.
_PACKAGE_PARENT = Path(__file__).resolve().parents[3]


class _Worker:
    def __init__(self, runner, slot):
        self.runner = runner
        self.slot = slot
        self.proc = None
        self.buf = b""
        self.case = None
        self.started = None
        self.deadline = None
        self.log_path = None

    def start(self):
        self.spawn()
        self.wait_ready()

    def spawn(self):
        r = self.runner
        self.log_path = os.path.join(r.tmp, f"worker{self.slot}-{r.restarts}.log")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ)
        env.setdefault("PYTHONFAULTHANDLER", "1")
        env["CDNN_FUZZ_SESSION"] = "1" if r.use_session else "0"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cdnn_runtime.testing.fuzz.worker", r.seeds_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
            cwd=str(_PACKAGE_PARENT))
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.case = None

    def wait_ready(self):
        r = self.runner
        deadline = time.monotonic() + r.startup_timeout
        while True:
            msg = self._read_msg(deadline)
            if msg is None:
                raise RuntimeError(f"fuzz worker did not start: {self.log_tail()}")
            if msg.get("ready"):
                r.session_note = msg.get("session")
                return

    def _read_msg(self, deadline):
        while True:
            msg = self.parse()
            if msg is not None:
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sel = selectors.DefaultSelector()
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(min(left, 1.0))
            sel.close()
            if ready and not self.fill():
                return None

    def fill(self):
        """Read what the worker wrote; False at its end (it died)."""
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self.buf += chunk
        return True

    def parse(self):
        msg, self.buf = parse(self.buf)
        return msg

    def send(self, msg, case_id):
        self.case = {"id": case_id}
        self.started = time.monotonic()
        self.deadline = self.started + self.runner.timeout
        send(self.proc.stdin, msg)

    def log_tail(self, n=3000):
        try:
            self.log.flush()
            with open(self.log_path, "rb") as fh:
                data = fh.read()
            return data[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, kill=False):
        if self.proc is None:
            return
        try:
            if kill:
                self.proc.kill()
            else:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        for fh in (self.proc.stdout, self.proc.stdin):
            try:
                fh.close()
            except Exception:
                pass
        self.log.close()
        self.proc = None


_UNKNOWN_CASE = {"kinds": [], "cls": "?", "seed": "?", "detail": "", "crc_ok": False}


class Runner:
    """Feeds cases to `jobs` worker processes; restarts a worker that dies or hangs."""

    def __init__(self, seeds=None, *, jobs=1, timeout=10.0, startup_timeout=180.0,
                 use_session=True):
        self.seeds = seeds if seeds is not None else build_seeds()
        self.jobs = max(1, int(jobs))
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.use_session = use_session
        self.session_note = None
        self.restarts = 0
        self.tmp = tempfile.mkdtemp(prefix="cdnn-fuzz-")
        self.seeds_path = os.path.join(self.tmp, "seeds.pickle")
        with open(self.seeds_path, "wb") as fh:
            pickle.dump(self.seeds, fh)
        self.workers = []

    def __enter__(self):
        self.workers = [_Worker(self, slot) for slot in range(self.jobs)]
        for w in self.workers:
            w.spawn()
        for w in self.workers:
            w.wait_ready()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for w in self.workers:
            w.stop()
        self.workers = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _restart(self, w, kill):
        w.stop(kill=kill)
        self.restarts += 1
        w.start()

    def _died(self, w, outcome):
        """The result of the case a worker was running when it crashed or hung."""
        info = dict(w.case or {})
        rc = w.proc.poll() if w.proc else None
        if outcome == "crash":
            try:
                rc = w.proc.wait(timeout=5)
            except Exception:
                rc = None
            if rc is not None and rc < 0:
                try:
                    sig = signal.Signals(-rc).name
                except ValueError:
                    sig = f"signal {-rc}"
                msg = f"worker killed by {sig}"
            else:
                msg = f"worker exited with status {rc}"
        else:
            msg = f"no answer within {self.timeout} s"
        info.update(outcome=outcome, msg=msg, returncode=rc, log=w.log_tail(),
                    time=time.monotonic() - (w.started or time.monotonic()))
        for k, v in _UNKNOWN_CASE.items():
            info.setdefault(k, v)
        return info

    def run(self, messages):
        """Run (message, case id) pairs; yields one result dict per case, as they finish."""
        pending = iter(messages)
        idle = list(self.workers)
        busy = {}
        exhausted = False
        while True:
            while idle and not exhausted:
                try:
                    msg, case_id = next(pending)
                except StopIteration:
                    exhausted = True
                    break
                w = idle.pop()
                try:
                    w.send(msg, case_id)
                except (BrokenPipeError, ConnectionResetError):
                    # The worker died after its last answer: start a new one for this case.
                    self._restart(w, kill=True)
                    w.send(msg, case_id)
                busy[w.proc.stdout.fileno()] = w
            if not busy:
                return
            sel = selectors.DefaultSelector()
            for fd, w in busy.items():
                sel.register(fd, selectors.EVENT_READ, w)
            wait = max(0.0, min(w.deadline for w in busy.values()) - time.monotonic())
            events = sel.select(min(wait, 1.0))
            sel.close()
            for key, _ in events:
                w = key.data
                alive = w.fill()
                while True:
                    msg = w.parse()
                    if msg is None:
                        break
                    if "start" in msg:
                        w.case = dict(msg["start"])
                    elif "result" in msg:
                        del busy[key.fd]
                        w.case = None
                        idle.append(w)
                        yield msg["result"]
                        break
                if not alive and key.fd in busy:
                    del busy[key.fd]
                    yield self._died(w, "crash")
                    self._restart(w, kill=True)
                    idle.append(w)
            now = time.monotonic()
            for fd, w in list(busy.items()):
                if now > w.deadline:
                    del busy[fd]
                    res = self._died(w, "hang")
                    self._restart(w, kill=True)
                    idle.append(w)
                    yield res

    def run_cases(self, fuzz_seed, indices):
        return self.run((("case", fuzz_seed, i), f"{fuzz_seed}-{i}") for i in indices)
