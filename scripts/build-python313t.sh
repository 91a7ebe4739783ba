#!/usr/bin/env bash
# Build a free-threaded CPython 3.13 ("3.13t", ./configure --disable-gil) from
# the upstream tarball of Debian trixie's python3.13 source package, and cache
# it OUTSIDE the checkout, keyed by the exact CPython version:
#
#   ${CC_PY313T_CACHE:-$HOME/.cache/concurrent_collections}/python-3.13.X-t/bin/python3.13t
#
# Usage:   PY=$(scripts/build-python313t.sh | tail -n1)
#
# The LAST line of stdout is the absolute path of the interpreter; everything
# else (progress, errors) goes to stderr.  Exit status is non-zero on failure,
# in which case nothing is printed on stdout.
#
# Fast path: if a complete, working cached interpreter exists, its path is
# printed at once (no apt, no network).  First run: ~4-6 minutes on 2 cores.
#
# How the source is fetched (the machine's apt configuration is NOT touched):
#   a private deb822 sources file (deb-src trixie main, Signed-By the Debian
#   archive keyring), a private lists dir and no binary caches are passed to
#   `apt-get -o ... update` / `apt-get -o ... source --download-only`.  apt
#   verifies the tarball's SHA256 against the signed trixie InRelease.  Only the
#   upstream .orig tarball is used (Debian's patches are NOT applied), so the
#   result is plain upstream CPython.
#
# Environment:
#   CC_PY313T_CACHE           cache root (default $HOME/.cache/concurrent_collections)
#   CC_PY313T_REFRESH=1       skip the fast path: ask trixie for its current
#                             version and build it if not cached yet
#   CC_PY313T_JOBS            make -j value (default: nproc)
#   CC_PY313T_ALLOW_UNSIGNED=1  documented fallback ONLY for machines whose
#                             /usr/share/keyrings/debian-archive-keyring.gpg has
#                             no trixie key (debian-archive-keyring older than
#                             2023.3+deb12u2): uses `[trusted=yes]`, i.e. the
#                             trixie index is NOT signature-checked.  Prefer
#                             `apt-get install debian-archive-keyring` instead.
#
# Build dependencies missing on the machine are installed with apt-get from the
# machine's normal (bookworm) repositories (root or sudo needed only then).
set -euo pipefail

# All normal output goes to stderr; fd 3 is the real stdout for the final path.
exec 3>&1 1>&2

log() { echo "build-python313t: $*" >&2; }
die() { echo "build-python313t: ERROR: $*" >&2; exit 1; }

CACHE=${CC_PY313T_CACHE:-${HOME:?HOME is not set}/.cache/concurrent_collections}
JOBS=${CC_PY313T_JOBS:-$(nproc 2>/dev/null || echo 2)}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# The Debian mirror this machine's apt already uses (CC_DEBIAN_MIRROR overrides).
. "$(dirname "$0")/debian-mirror.sh"
MIRROR=$(apt_mirror)
SUITE=trixie

[ -n "$MIRROR" ] || die "no Debian mirror in the apt sources (/etc/apt/sources.list.d/*.sources, sources.list); set CC_DEBIAN_MIRROR"

# --- helpers -------------------------------------------------------------------

# A cached prefix is usable when the install finished (stamp written after the
# checks passed) and the interpreter runs free-threaded.
usable() { # prefix
  local py=$1/bin/python3.13t
  [ -f "$1/.cc-complete" ] && [ -x "$py" ] || return 1
  "$py" -c 'import sys, sysconfig
assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1
sys.exit(1 if sys._is_gil_enabled() else 0)' >/dev/null 2>&1
}

# Newest usable cached interpreter (by version), or nothing.
find_cached() {
  local d best=""
  [ -d "$CACHE" ] || return 0
  while IFS= read -r d; do
    [ -n "$d" ] || continue
    if usable "$d"; then best=$d; fi
  done < <(find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name 'python-3.13.*-t' 2>/dev/null | sort -V)
  [ -z "$best" ] || echo "$best/bin/python3.13t"
}

finish() { # interpreter path
  log "interpreter: $1"
  echo "$1" >&3
  exit 0
}

# --- fast path: no apt, no network -----------------------------------------------
if [ "${CC_PY313T_REFRESH:-0}" != 1 ]; then
  py=$(find_cached)
  [ -z "$py" ] || finish "$py"
fi

# --- slow path -------------------------------------------------------------------
mkdir -p "$CACHE" || die "cannot create cache dir $CACHE"
CACHE=$(cd "$CACHE" && pwd -P)

# Serialise concurrent runs (e.g. two test.sh in parallel) on the cache.
exec 9>"$CACHE/.build-python313t.lock"
if command -v flock >/dev/null; then
  flock -n 9 || { log "waiting for another build (lock $CACHE/.build-python313t.lock)"; flock 9; }
  if [ "${CC_PY313T_REFRESH:-0}" != 1 ]; then
    py=$(find_cached)
    [ -z "$py" ] || finish "$py"          # another run built it meanwhile
  fi
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; fi
fi
export DEBIAN_FRONTEND=noninteractive

# 1. Build dependencies: install only those missing, from the normal repos.
DEPS=(build-essential pkg-config dpkg-dev xz-utils ca-certificates
      zlib1g-dev libffi-dev libssl-dev libbz2-dev liblzma-dev libsqlite3-dev
      libreadline-dev libncurses-dev libgdbm-dev uuid-dev)
missing=()
for p in "${DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
    die "missing build dependencies (${missing[*]}) and not root / no sudo; install them first"
  fi
  log "installing build dependencies: ${missing[*]}"
  $SUDO apt-get update -qq -o Acquire::http::Timeout=20 -o Acquire::Retries=1 \
    || die "apt-get update failed (are the Debian repositories reachable?)"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi

# 2. Fetch the source through a private apt configuration.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/build-python313t.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
# apt downloads as the unprivileged _apt user when run as root: let it in.
chmod 0755 "$WORK"
mkdir -p "$WORK/lists/partial" "$WORK/dl"
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$WORK/dl"; fi

SIGNED_BY="Signed-By: $KEYRING"
if [ "${CC_PY313T_ALLOW_UNSIGNED:-0}" = 1 ]; then
  log "WARNING: CC_PY313T_ALLOW_UNSIGNED=1: trixie index will NOT be signature-checked"
  SIGNED_BY="Trusted: yes"
elif [ ! -r "$KEYRING" ]; then
  die "$KEYRING not found: apt-get install debian-archive-keyring (or see CC_PY313T_ALLOW_UNSIGNED in $0)"
fi
cat >"$WORK/trixie-src.sources" <<EOF
Types: deb-src
URIs: $MIRROR
Suites: $SUITE
Components: main
$SIGNED_BY
EOF

APT_OPTS=(
  -o "Dir::Etc::sourcelist=$WORK/trixie-src.sources"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$WORK/lists"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="   # no writes to /var/cache/apt
  -o "Acquire::Languages=none"
  -o "Acquire::http::Timeout=20" -o "Acquire::Retries=1"
  -o "APT::Update::Error-Mode=any"
)

log "fetching the $SUITE source index from $MIRROR (private apt config)"
if ! timeout 600 apt-get "${APT_OPTS[@]}" update >"$WORK/apt-update.log" 2>&1 \
   || ! compgen -G "$WORK/lists/*_${SUITE}_main_source_Sources*" >/dev/null; then
  cat "$WORK/apt-update.log" >&2
  if grep -qE "NO_PUBKEY|not signed|signature|EXPKEYSIG|KEYEXPIRED" "$WORK/apt-update.log"; then
    die "$KEYRING cannot verify $SUITE (debian-archive-keyring too old?).
  Fix: apt-get update && apt-get install debian-archive-keyring   (2023.3+deb12u2 has the trixie keys)
  or, knowingly, rerun with CC_PY313T_ALLOW_UNSIGNED=1 (uses [trusted=yes])"
  fi
  die "could not fetch the $SUITE source index from $MIRROR (network/proxy unreachable?)"
fi

# Exact versions, from the index (no download yet).
uris=$(apt-get "${APT_OPTS[@]}" source --print-uris python3.13 2>"$WORK/apt-uris.log") \
  || { cat "$WORK/apt-uris.log" >&2; die "python3.13 not found in the $SUITE source index"; }
orig=$(printf '%s\n' "$uris" | awk '{print $2}' | grep -E '^python3\.13_3\.13\.[0-9]+\.orig\.tar\.(xz|gz|bz2)$' | head -n1) \
  || die "no python3.13 orig tarball listed in the $SUITE index"
debver=$(printf '%s\n' "$uris" | awk '{print $2}' | sed -n 's/^python3\.13_\(.*\)\.dsc$/\1/p' | head -n1)
VER=${orig#python3.13_}; VER=${VER%.orig.tar.*}
PREFIX=$CACHE/python-$VER-t
PY=$PREFIX/bin/python3.13t
log "$SUITE has python3.13 $debver -> CPython $VER"

if usable "$PREFIX"; then finish "$PY"; fi

log "downloading $orig (apt checks its SHA256 against the signed index)"
( cd "$WORK/dl" && timeout 900 apt-get "${APT_OPTS[@]}" source --download-only python3.13 ) \
  >"$WORK/apt-source.log" 2>&1 \
  || { cat "$WORK/apt-source.log" >&2; die "downloading the python3.13 source failed"; }
[ -f "$WORK/dl/$orig" ] || die "$orig missing after apt-get source"

log "extracting upstream CPython $VER"
mkdir -p "$WORK/src"
tar -xf "$WORK/dl/$orig" -C "$WORK/src" --strip-components=1
[ -x "$WORK/src/configure" ] || die "unexpected layout of $orig (no configure)"

# 3. Configure, build, install.  A stale / half-installed prefix is removed.
rm -rf "$PREFIX"
mkdir -p "$CACHE/logs"
BLOG=$CACHE/logs/build-python-$VER-t.log
: >"$BLOG"
run() { # description cmd...
  local what=$1; shift
  log "$what (log: $BLOG)"
  if ! "$@" >>"$BLOG" 2>&1; then
    tail -n 40 "$BLOG" >&2
    rm -rf "$PREFIX"
    die "$what failed; full log: $BLOG"
  fi
}
t0=$SECONDS
cd "$WORK/src"
run "configure --disable-gil --prefix=$PREFIX" \
  ./configure --disable-gil --prefix="$PREFIX" --without-ensurepip
run "make -j$JOBS (a few minutes)" make -j"$JOBS"
run "make install" make install

# 4. Check the result before marking it complete.
[ -x "$PY" ] || die "$PY missing after make install"
"$PY" - <<'EOF' || { rm -rf "$PREFIX"; die "the built interpreter failed its checks"; }
import os, sys, sysconfig
assert not sys._is_gil_enabled(), "GIL is enabled"
assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1, "Py_GIL_DISABLED != 1"
inc = sysconfig.get_paths()["include"]
assert os.path.isfile(os.path.join(inc, "Python.h")), "no Python.h in " + inc
import ssl, zlib, bz2, lzma, sqlite3, ctypes, readline, uuid, hashlib, decimal  # noqa
print("build-python313t: ok:", sys.version.replace("\n", " "), "| include:", inc, file=sys.stderr)
EOF
printf 'cpython=%s\ndebian=%s\nbuilt=%s\n' "$VER" "$debver" "$(date -u +%FT%TZ)" >"$PREFIX/.cc-complete"
log "built CPython $VER free-threaded in $((SECONDS - t0))s"
finish "$PY"
