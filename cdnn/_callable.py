"""Modules that are also their main function.

Python binds a submodule on its package once imported, so `cdnn.compress` (the function the
API promises) would otherwise turn into the module `cdnn/compress.py` after any
`import cdnn.compress`. Such a module forwards calls to its function of the same name.
"""

import sys
import types


class CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name):
    sys.modules[module_name].__class__ = CallableModule
