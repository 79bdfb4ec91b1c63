"""Where numba keeps the compiled kernels, so that a read-only installation still works.

Numba caches a compiled function beside its source file (``__pycache__``) or, where that is not
writable, in the user's cache directory; where neither is writable it refuses to define the
function at all (``cannot cache function ...: no locator available``), which would make
``import cdnn_runtime`` fail on a read-only system image with a read-only home. Every module
with compiled kernels therefore asks :func:`jit_cache` for its ``cache=`` flag:

1. ``CDNN_CACHE_DIR`` (or numba's own ``NUMBA_CACHE_DIR``), when set and writable;
2. numba's default places, beside the sources or in the user's cache directory;
3. a private directory ``cdnn-numba-cache-<uid>`` under the system's temporary directory
   (created with mode 0700 and used only when this user owns it and no one else can write
   to it: the cache holds pickled code);
4. no cache: kernels compile again in every process (a warning says so).

The choice is made once per source directory, when the module is imported; 1 and 3 set
``numba.config.CACHE_DIR`` (and ``NUMBA_CACHE_DIR``) for the whole process.

Numba checks a cached function against the hash of its own source file only, but the kernels
inline helpers from other files (``kernels/_common.py``'s ``apply_activation``, ``_simd.py``'s
``lut_dot``, ``bitpack.py``'s bit writer): an edit there would leave stale compiled kernels. So
functions defined in :data:`KERNEL_SOURCES` are cached through locators (numba's own, subclassed
and put first in its list) whose source stamp is one hash of all those files: any edit to any of
them recompiles every kernel.
"""

import contextlib
import functools
import glob
import hashlib
import os
import stat
import tempfile
import warnings

import numba
from numba.core import caching
from numba.core.caching import FunctionCache

#: Environment variable naming the directory for compiled kernels.
ENV_CACHE_DIR = "CDNN_CACHE_DIR"

#: The sources of the runtime's compiled code, as patterns relative to the package: every module
#: that defines numba functions or intrinsics, and this one. A module that gets compiled code
#: joins this list (tests/test_jit_cache.py checks that every module calling jit_cache is in it).
KERNEL_SOURCES = ("_jit.py", "bitpack.py", "huffman.py", "sparse.py", "kernels/*.py")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=1)
def kernel_source_files():
    """The absolute paths matched by KERNEL_SOURCES, sorted (listed once per process)."""
    found = set()
    for pattern in KERNEL_SOURCES:
        found.update(glob.glob(os.path.join(_PACKAGE_DIR, pattern)))
    return tuple(sorted(found))


def sources_stamp(paths):
    """SHA-256 over the names and bytes of the files ``paths`` (re-read when one of them
    changes size or modification time)."""
    key = []
    for p in paths:
        st = os.stat(p)
        key.append((p, st.st_mtime_ns, st.st_size))
    return _hash_files(tuple(key))


@functools.lru_cache(maxsize=16)
def _hash_files(key):
    h = hashlib.sha256()
    for path, _, _ in key:
        with open(path, "rb") as f:
            data = f.read()
        h.update(os.path.relpath(path, _PACKAGE_DIR).encode() + b"\0")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


class _KernelSourcesStamp:
    """Numba cache locator mixin: applies to functions defined in the kernel sources only, and
    stamps their cache with the hash of all of them instead of their own file's."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.abspath(py_file) not in kernel_source_files():
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return sources_stamp(kernel_source_files())


class KernelSourcesUserProvidedLocator(_KernelSourcesStamp, caching.UserProvidedCacheLocator):
    """numba.config.CACHE_DIR (CDNN_CACHE_DIR, NUMBA_CACHE_DIR, the private temporary one)."""


class KernelSourcesInTreeLocator(_KernelSourcesStamp, caching.InTreeCacheLocator):
    """``__pycache__`` beside the sources."""


class KernelSourcesUserWideLocator(_KernelSourcesStamp, caching.UserWideCacheLocator):
    """The user's cache directory."""


_KERNEL_LOCATORS = [KernelSourcesUserProvidedLocator, KernelSourcesInTreeLocator,
                    KernelSourcesUserWideLocator]


def _register_locators():
    """Put the kernel-source locators first in numba's list (once): they answer for the kernel
    sources only, in numba's own order of places, and leave every other function to numba."""
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    classes = impl._locator_classes
    if classes[:len(_KERNEL_LOCATORS)] != _KERNEL_LOCATORS:
        classes[:0] = _KERNEL_LOCATORS


_register_locators()

_by_dir = {}
_state = {"dir_set": False, "env_tried": False}


def _writable_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _private_temp_dir():
    """A cache directory under the temporary directory that only this user can write, or
    None."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    owner = uid if uid is not None else "user"
    path = os.path.join(tempfile.gettempdir(), f"cdnn-numba-cache-{owner}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o022:
        return None
    if uid is not None and st.st_uid != uid:
        return None
    return path if _writable_dir(path) else None


def _numba_can_cache(py_file):
    """Whether numba finds a writable cache location for functions defined in ``py_file``
    (its own locator search, run on a probe function compiled under that file name)."""
    scope = {}
    exec(compile("def _cdnn_cache_probe():\n    pass\n", py_file, "exec"), scope)
    try:
        FunctionCache(scope["_cdnn_cache_probe"])
        return True
    except RuntimeError:
        return False


def _set_cache_dir(path):
    # numba re-reads its NUMBA_* variables when they change between compilations, so the
    # directory goes into the environment too (child processes inherit it)
    os.environ["NUMBA_CACHE_DIR"] = path
    numba.config.CACHE_DIR = path
    _state["dir_set"] = True


def jit_cache(py_file):
    """The ``cache=`` flag for numba functions defined in ``py_file`` (a module's
    ``__file__``); on the way it picks the cache directory as the module docstring says."""
    key = os.path.dirname(os.path.abspath(py_file))
    if key in _by_dir:
        return _by_dir[key]
    explicit = os.environ.get(ENV_CACHE_DIR, "")
    if explicit and not _state["env_tried"]:
        _state["env_tried"] = True
        if _writable_dir(explicit):
            _set_cache_dir(explicit)
        else:
            warnings.warn(f"{ENV_CACHE_DIR}={explicit!r} is not a writable directory; compiled "
                          "kernels are cached elsewhere", RuntimeWarning, stacklevel=2)
    ok = _numba_can_cache(py_file)
    if not ok and not _state["dir_set"]:
        path = _private_temp_dir()
        if path is not None:
            _set_cache_dir(path)
            ok = _numba_can_cache(py_file)
    if not ok:
        warnings.warn(f"no writable place to cache the compiled kernels of {key} (set "
                      f"{ENV_CACHE_DIR}); they are compiled again in every process",
                      RuntimeWarning, stacklevel=2)
    _by_dir[key] = ok
    return ok


# ---- one variant per kernel in a process with a cold cache ---------------------------------

#: Environment variable: "0" makes every process compile the serial and the threaded variant of
#: a kernel as its calls ask (the test suite sets it, so that the serial kernels are the ones
#: tested; `cdnn-runtime warmup` compiles both anyway).
ENV_ONE_VARIANT = "CDNN_COLD_ONE_VARIANT"

_cold_pairs = {}  # serial variant -> the variant compiled first in a cold process, or None
_UNSEEN = object()


def _has_code(dispatcher):
    """Whether `dispatcher` has code for the current sources: compiled or loaded in this
    process, or in the on-disk cache (any signature)."""
    if dispatcher.signatures:
        return True
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:  # not cached, or numba's internals moved: as if it had code
        return True


_scopes = {"first_use": 0, "every_variant": 0}


@contextlib.contextmanager
def _scope(name):
    _scopes[name] += 1
    try:
        yield
    finally:
        _scopes[name] -= 1


def first_use():
    """The scope of a session's load and first run, where threaded_or_serial may let the
    variant of a cold kernel asked for first serve the other's calls."""
    return _scope("first_use")


def every_variant():
    """A scope where every call gets the variant its size asks for, cold cache or not
    (`cdnn-runtime warmup`, which compiles them all)."""
    return _scope("every_variant")


def threaded_or_serial(threaded, serial, parallel):
    """The variant of a kernel to run: `threaded` when `parallel`, else `serial`, except while
    a session loads and runs for the first time (first_use) in a process that found neither
    variant's code (checked the first time the pair is asked for): there the variant asked for
    first serves the other's calls too (same results; a big layer may run on one thread, a
    small one pay a thread launch). Each compiled variant costs the machine code of the kernel
    and of everything it calls, so that first result comes after about half the compilation;
    later runs compile the other variant when they first need it, so that no layer keeps
    running on the wrong one for the life of the process (`cdnn-runtime warmup` compiles both
    beforehand)."""
    wanted = threaded if parallel else serial
    if not _scopes["first_use"] or _scopes["every_variant"]:
        return wanted
    first = _cold_pairs.get(serial, _UNSEEN)
    if first is _UNSEEN:
        cold = os.environ.get(ENV_ONE_VARIANT, "1") != "0" and not (
            _has_code(serial) or _has_code(threaded))
        first = _cold_pairs[serial] = wanted if cold else None
    return first or wanted
