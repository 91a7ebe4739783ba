"""Shared helpers for the concurrent_collections tests.

CI runs them against the installed package (scripts/test-python.sh). A CMake
build tree works too, with the package on PYTHONPATH:

    PYTHONPATH=build/python:/usr/lib/python3/dist-packages $PY -m pytest -q tests/python
"""

import gc
import os
import subprocess
import sys
import sysconfig

import pytest

import concurrent_collections

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled():
    """True when the running interpreter currently uses a GIL."""
    return getattr(sys, "_is_gil_enabled", lambda: True)()


def settle():
    """Collect garbage and free every node retired so far (exact stats after)."""
    gc.collect()
    concurrent_collections.config.smr_barrier()


def run_child(code, env=None, timeout=60):
    """Run `code` in a fresh interpreter with the package importable."""
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(concurrent_collections.__file__))]
        + [p for p in sys.path if p]
    )
    for key, value in (env or {}).items():
        if value is None:
            child_env.pop(key, None)  # None: unset the variable
        else:
            child_env[key] = value
    return subprocess.run(
        [sys.executable, "-c", code],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def stats_off_after():
    """Restore config.enable_alloc_statistics after the test."""
    before = concurrent_collections.config.enable_alloc_statistics
    yield
    concurrent_collections.config.enable_alloc_statistics = before


def pytest_report_header(config):
    return (
        f"concurrent_collections from {concurrent_collections.__file__}; "
        f"free-threaded build: {FREE_THREADED}; GIL enabled: {gil_enabled()}; "
        f"allocator: {concurrent_collections.config.allocator}"
    )
