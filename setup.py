"""Build the concurrent_collections._core extension with setuptools.

    python3 -m pip install --no-build-isolation .

The extension is built from the SAME C sources as the library: the list is
read from `set(CC_SOURCES ...)` in CMakeLists.txt (the single source of truth)
plus python/concurrent_collections/_core.c. It links Debian's libmimalloc
(libmimalloc-dev). Metadata lives in pyproject.toml. Build trees go to
build-setuptools/ so that they never mix with a CMake build in build/.

For interpreters whose setuptools cannot run (Debian 12's setuptools on 3.13),
use the CMake build (-DCC_PYTHON=ON), see python/CMakeLists.txt.
"""

import os
import re

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def library_sources():
    with open(os.path.join(HERE, "CMakeLists.txt"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"set\(\s*CC_SOURCES\s+([^)]*)\)", text)
    if not m:
        raise RuntimeError("CMakeLists.txt: set(CC_SOURCES ...) not found")
    sources = m.group(1).split()
    for s in sources:
        if not os.path.exists(os.path.join(HERE, s)):
            raise RuntimeError(f"CMakeLists.txt lists {s}, which does not exist")
    return sources


core = Extension(
    "concurrent_collections._core",
    sources=library_sources() + ["python/concurrent_collections/_core.c"],
    include_dirs=["include"],
    libraries=["mimalloc"],
    extra_compile_args=["-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra"],
    extra_link_args=["-pthread", "-Wl,--version-script=python/_core.map"],
    depends=["python/_core.map"] + [os.path.join("include", "cc", h) for h in
                                    ("config.h", "alloc.h", "smr.h", "stack.h", "queue.h")],
)

setup(
    ext_modules=[core],
    options={"build": {"build_base": "build-setuptools"}},
)
