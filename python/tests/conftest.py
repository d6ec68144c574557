# SPDX-License-Identifier: MIT
import ctypes
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def lib_spy(monkeypatch):
    """lib_spy(name) records, for this test, every call of libattn's function name (then
    makes it) and returns the list of the calls' arguments; structs are copied as the call
    sees them (the hot path reuses its own)."""
    from attn import _lib

    def install(name):
        seen = []
        real = getattr(_lib.lib, name)

        def spy(*args):
            seen.append(tuple(type(a).from_buffer_copy(a) if isinstance(a, ctypes.Structure) else a
                              for a in args))
            return real(*args)

        monkeypatch.setattr(_lib.lib, name, spy)
        return seen

    return install
