#!/usr/bin/env bash
# A venv of interpreter PY with the named tools at the versions pinned in
# requirements-dev.txt, cached OUTSIDE the checkout:
#
#   VENV=$(scripts/python-env.sh PY pytest hypothesis ... | tail -n1)
#
# The last line of stdout is the venv's directory; progress goes to stderr.
# The venv is keyed by the interpreter (path and version), the tool list and
# requirements-dev.txt, so changing a pin makes a new one. A venv whose set-up
# did not finish has no .complete stamp and is made again. A cold cache costs
# only the time to fetch and install the tools (pip's own cache helps too).
#
# Environment: CC_VENV_CACHE  cache root (default $HOME/.cache/concurrent_collections/venvs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=$1
shift
pins=$root/requirements-dev.txt
cache=${CC_VENV_CACHE:-$HOME/.cache/concurrent_collections/venvs}

ident=$("$py" -c 'import sys, sysconfig; print(sys.executable, sys.version, sysconfig.get_config_var("SOABI"))')
key=$( { echo "$ident"; echo "$*"; cat "$pins"; } | sha256sum | cut -c1-16)
abi=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("SOABI").split("-")[1])')
venv=$cache/py$abi-$key

if [ ! -f "$venv/.complete" ]; then
  echo "python-env: creating $venv ($*)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv" >&2
  # Only wheels: an sdist of a tool would need its own build toolchain
  # (hypothesis' newer releases need Rust, for example).
  "$venv/bin/python" -m pip install -q --only-binary :all: -c "$pins" "$@" >&2
  touch "$venv/.complete"
fi
echo "$venv"
