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
"""

import os
import stat
import tempfile
import warnings

import numba
from numba.core.caching import FunctionCache

#: Environment variable naming the directory for compiled kernels.
ENV_CACHE_DIR = "CDNN_CACHE_DIR"

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
    path = os.path.join(tempfile.gettempdir(), f"cdnn-numba-cache-{uid if uid is not None else 'user'}")
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
