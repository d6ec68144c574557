# SPDX-License-Identifier: MIT
"""Builds libattn.so with CMake from the enclosing attn repository and ships it inside the
package (attn/libattn.so.0), unless ATTN_LIBRARY names an existing library (then nothing is
built: the package loads that path at run time, see attn/_lib.py).
Only the shared library is built: -DATTN_BUILD_TESTS=OFF -DATTN_BUILD_TOOLS=OFF."""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


class BuildWithLibattn(build_py):
    def run(self):
        super().run()
        if os.environ.get("ATTN_LIBRARY"):
            return
        if not os.path.exists(os.path.join(REPO, "include", "attn.h")):
            raise RuntimeError("attn: building the package needs the attn repository around python/ "
                               "(or ATTN_LIBRARY=/path/to/libattn.so.0)")
        build = os.environ.get("ATTN_BUILD_DIR") or os.path.join(HERE, "build", "libattn")
        jobs = os.environ.get("ATTN_BUILD_JOBS", "2")
        subprocess.check_call(["cmake", "-S", REPO, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                               "-DATTN_BUILD_TESTS=OFF", "-DATTN_BUILD_TOOLS=OFF", "-DATTN_BUILD_SHARED=ON"])
        subprocess.check_call(["cmake", "--build", build, "-j", jobs, "--target", "attn_shared"])
        src = os.path.realpath(os.path.join(build, "libattn.so.0"))
        dst = os.path.join(self.build_lib, "attn", "libattn.so.0")
        shutil.copyfile(src, dst)


setup(cmdclass={"build_py": BuildWithLibattn})
