"""Where compiled kernels are cached (cdnn_runtime/_jit.py): a read-only installation with a
read-only home still imports and runs, falling back to a private temporary directory and, when
nothing is writable, to no cache at all."""

import json
import os
import shutil
import stat
import subprocess
import sys

import numba
import pytest

from cdnn_runtime import _jit


@pytest.fixture
def fresh(monkeypatch):
    """A clean choice: no directory decided yet, numba's cache directory and the environment
    restored afterwards."""
    monkeypatch.setattr(_jit, "_by_dir", {})
    monkeypatch.setattr(_jit, "_state", {"dir_set": False, "env_tried": False})
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    monkeypatch.delenv(_jit.ENV_CACHE_DIR, raising=False)
    monkeypatch.setenv("NUMBA_CACHE_DIR", os.environ.get("NUMBA_CACHE_DIR", ""))
    return monkeypatch


def test_numba_default_places_are_used_when_writable(fresh, tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("x = 1\n")
    before = numba.config.CACHE_DIR
    assert _jit._numba_can_cache(str(src))
    assert _jit.jit_cache(str(src)) is True
    assert numba.config.CACHE_DIR == before  # nothing changed


def test_falls_back_to_a_private_temporary_directory(fresh, tmp_path):
    cache = tmp_path / "cache"
    calls = []

    def can_cache(py_file):  # numba finds no place until a cache directory is set
        calls.append(numba.config.CACHE_DIR)
        return numba.config.CACHE_DIR == str(cache)

    fresh.setattr(_jit, "_numba_can_cache", can_cache)
    fresh.setattr(_jit, "_private_temp_dir", lambda: str(cache))
    assert _jit.jit_cache(str(tmp_path / "a.py")) is True
    assert numba.config.CACHE_DIR == str(cache) == os.environ["NUMBA_CACHE_DIR"]
    assert len(calls) == 2
    # decided once per directory
    assert _jit.jit_cache(str(tmp_path / "b.py")) is True
    assert len(calls) == 2


def test_no_cache_at_all_when_nothing_is_writable(fresh, tmp_path):
    fresh.setattr(_jit, "_numba_can_cache", lambda py_file: False)
    fresh.setattr(_jit, "_private_temp_dir", lambda: None)
    with pytest.warns(RuntimeWarning, match="compiled again in every process"):
        assert _jit.jit_cache(str(tmp_path / "a.py")) is False


def test_cdnn_cache_dir_is_used_when_writable(fresh, tmp_path):
    target = tmp_path / "kernels-cache"
    fresh.setenv(_jit.ENV_CACHE_DIR, str(target))
    src = tmp_path / "mod.py"
    src.write_text("x = 1\n")
    assert _jit.jit_cache(str(src)) is True
    assert numba.config.CACHE_DIR == str(target)
    assert target.is_dir()


def test_cdnn_cache_dir_not_writable_warns_and_falls_back(fresh, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    fresh.setenv(_jit.ENV_CACHE_DIR, str(blocker / "sub"))  # cannot be created under a file
    src = tmp_path / "mod.py"
    src.write_text("x = 1\n")
    with pytest.warns(RuntimeWarning, match="not a writable directory"):
        assert _jit.jit_cache(str(src)) is True
    assert numba.config.CACHE_DIR != str(blocker / "sub")


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_private_temporary_directory_must_not_be_writable_by_others(fresh, tmp_path):
    fresh.setattr(_jit.tempfile, "gettempdir", lambda: str(tmp_path))
    path = _jit._private_temp_dir()
    assert path == str(tmp_path / f"cdnn-numba-cache-{os.getuid()}")
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0
    os.chmod(path, 0o777)  # someone could plant pickled code in it: refused
    assert _jit._private_temp_dir() is None
    os.rmdir(path)
    os.symlink(str(tmp_path), path)  # a link, not a directory of its own: refused
    assert _jit._private_temp_dir() is None


def test_runtime_modules_take_their_cache_flag_from_jit_cache():
    import cdnn_runtime.bitpack
    import cdnn_runtime.huffman
    import cdnn_runtime.kernels.sparse_linear as SL
    import cdnn_runtime.sparse
    for mod in (cdnn_runtime.bitpack, cdnn_runtime.huffman, cdnn_runtime.sparse, SL):
        assert mod._CACHE is True  # this checkout is writable
    assert SL.spmv_parallel._cache.__class__.__name__ == "FunctionCache"  # not NullCache


# ---------------------------------------------------------------------------------------------
# One source stamp for every kernel: an edit to any kernel source recompiles them all
# ---------------------------------------------------------------------------------------------

PACKAGE = os.path.dirname(os.path.abspath(_jit.__file__))


def test_every_module_with_compiled_code_is_a_kernel_source():
    sources = set(_jit.kernel_source_files())
    assert os.path.join(PACKAGE, "kernels", "_common.py") in sources
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".py") and "jit_cache(__file__)" in open(path).read():
                assert path in sources, f"{path} caches compiled code but is not in KERNEL_SOURCES"


def test_sources_stamp_changes_with_any_file(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    before = _jit.sources_stamp([str(a), str(b)])
    assert _jit.sources_stamp([str(a), str(b)]) == before
    b.write_text("y = 3\n")
    assert _jit.sources_stamp([str(a), str(b)]) != before


def test_kernels_are_stamped_with_all_kernel_sources():
    import cdnn_runtime.huffman
    import cdnn_runtime.kernels.elementwise as E
    stamp = _jit.sources_stamp(_jit.kernel_source_files())
    for kernel in (E.activation_serial, cdnn_runtime.huffman._decode_serial):
        locator = kernel._cache._impl.locator
        assert isinstance(locator, _jit._KernelSourcesStamp)
        assert locator.get_source_stamp() == stamp


_CHILD = r"""
import json, sys
import numpy as np
import cdnn_runtime
from cdnn_runtime.kernels import elementwise

assert cdnn_runtime.__file__.startswith(sys.argv[1]), cdnn_runtime.__file__
y = elementwise.relu(np.array([-2.0, 3.0], np.float32))  # two values: the serial kernel
stats = elementwise.activation_serial.stats
print(json.dumps({"y": y.tolist(), "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values())}))
"""


def test_editing_an_inlined_helper_recompiles_the_kernels_that_use_it(tmp_path):
    """elementwise.activation_serial calls _common.bias_activation_rows, from another file: after
    an edit of _common.py a new process must recompile it, not load the cached one."""
    root = tmp_path / "copy"
    shutil.copytree(PACKAGE, root / "cdnn_runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "testing"))
    env = dict(os.environ, PYTHONPATH=str(root), CDNN_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("NUMBA_DISABLE_JIT", None)

    def run():
        res = subprocess.run([sys.executable, "-c", _CHILD, str(root)], cwd=str(root), env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout.strip().splitlines()[-1])

    first = run()
    assert first == {"y": [0.0, 3.0], "hits": 0, "misses": 1}
    assert run() == {"y": [0.0, 3.0], "hits": 1, "misses": 0}  # cached
    common = root / "cdnn_runtime" / "kernels" / "_common.py"
    text = common.read_text()
    relu = "                d[i] = np.float32(0.0) if v < 0 else v\n"
    assert text.count(relu) == 1
    common.write_text(text.replace(relu, relu.replace("else v", "else v + 1")))
    assert run() == {"y": [0.0, 4.0], "hits": 0, "misses": 1}  # recompiled with the new helper
