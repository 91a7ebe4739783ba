"""PEP 517 build backend for concurrent_collections: setuptools, plus a
fallback for interpreters that have setuptools but not the `wheel` package.

setuptools < 70 needs the separate `wheel` package to build a wheel (its
`bdist_wheel` and `dist_info` commands come from it). The machine's python3
here (pyenv 3.11.7, setuptools 65) has no `wheel`, and with no PyPI it cannot
get one, so `pip install --no-build-isolation .` would fail. When `wheel` is
importable this module is exactly setuptools.build_meta. Otherwise
build_wheel runs `setup.py egg_info build` (which needs no `wheel`) and packs
the result into a wheel itself: METADATA is setuptools' PKG-INFO, the tag is
the running interpreter's (e.g. cp311-cp311-linux_x86_64), RECORD has sha256
hashes. prepare_metadata_for_build_wheel is then not offered, so pip takes the
metadata from the wheel.
"""

import base64
import hashlib
import os
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

from setuptools import build_meta as _setuptools_backend

try:
    import wheel  # noqa: F401

    HAVE_WHEEL = True
except ImportError:
    HAVE_WHEEL = False

build_sdist = _setuptools_backend.build_sdist
get_requires_for_build_sdist = _setuptools_backend.get_requires_for_build_sdist

if HAVE_WHEEL:
    build_wheel = _setuptools_backend.build_wheel
    get_requires_for_build_wheel = _setuptools_backend.get_requires_for_build_wheel
    prepare_metadata_for_build_wheel = _setuptools_backend.prepare_metadata_for_build_wheel
else:

    def get_requires_for_build_wheel(config_settings=None):
        return []

    def _wheel_tag():
        soabi = sysconfig.get_config_var("SOABI") or ""
        parts = soabi.split("-")
        if sys.implementation.name != "cpython" or len(parts) < 2:
            raise RuntimeError(f"unsupported interpreter for the fallback wheel builder: {soabi!r}")
        interp = "cp%d%d" % sys.version_info[:2]
        abi = "cp" + parts[1]  # 311, 313t, 311d ...
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        return f"{interp}-{abi}-{plat}"

    def _record_line(arcname, data):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        return f"{arcname},sha256={digest.decode()},{len(data)}"

    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        root = os.getcwd()
        with tempfile.TemporaryDirectory(prefix="cc-wheel-") as tmp:
            lib = os.path.join(tmp, "lib")
            egg = os.path.join(tmp, "egg")
            os.makedirs(egg)
            subprocess.run(
                [sys.executable, os.path.join(root, "setup.py"), "egg_info", "--egg-base", egg,
                 "build", "--build-lib", lib, "--build-temp", os.path.join(tmp, "temp")],
                cwd=root, check=True, stdout=sys.stderr,
            )
            [egg_info] = [d for d in os.listdir(egg) if d.endswith(".egg-info")]
            with open(os.path.join(egg, egg_info, "PKG-INFO"), "rb") as f:
                metadata = f.read()
            fields = dict(
                line.split(": ", 1) for line in metadata.decode().splitlines() if ": " in line
            )
            name = fields["Name"].replace("-", "_")
            version = fields["Version"]
            tag = _wheel_tag()
            dist_info = f"{name}-{version}.dist-info"
            wheel_name = f"{name}-{version}-{tag}.whl"
            generated = {
                f"{dist_info}/METADATA": metadata,
                f"{dist_info}/WHEEL": (
                    "Wheel-Version: 1.0\n"
                    "Generator: concurrent_collections cc_build_backend\n"
                    "Root-Is-Purelib: false\n"
                    f"Tag: {tag}\n"
                ).encode(),
                f"{dist_info}/top_level.txt": b"concurrent_collections\n",
            }
            record = []
            with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w",
                                 zipfile.ZIP_DEFLATED) as zf:
                for dirpath, dirnames, filenames in os.walk(lib):
                    dirnames.sort()
                    for fn in sorted(filenames):
                        path = os.path.join(dirpath, fn)
                        arcname = os.path.relpath(path, lib).replace(os.sep, "/")
                        with open(path, "rb") as f:
                            data = f.read()
                        zf.writestr(arcname, data)
                        record.append(_record_line(arcname, data))
                for arcname, data in generated.items():
                    zf.writestr(arcname, data)
                    record.append(_record_line(arcname, data))
                record.append(f"{dist_info}/RECORD,,")
                zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
        return wheel_name
