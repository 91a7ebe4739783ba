#!/usr/bin/env bash
# Fetch Debian trixie's mimalloc 3 binary packages (libmimalloc3,
# libmimalloc-dev) and unpack them OUTSIDE the checkout, keyed by version:
#
#   ${CC_MIMALLOC3_CACHE:-$HOME/.cache/concurrent_collections}/mimalloc-<debian version>/
#     usr/include/mimalloc.h, usr/lib/x86_64-linux-gnu/libmimalloc.so*,
#     usr/lib/x86_64-linux-gnu/cmake/mimalloc-3.x/ (mimalloc's CMake package)
#
# Usage:   ROOT=$(scripts/fetch-mimalloc3.sh | tail -n1)
#          cmake -DCMAKE_PREFIX_PATH=$ROOT/usr ...   (find_package(mimalloc) finds 3.x)
#
# The LAST line of stdout is the unpacked root; progress goes to stderr. The
# packages need only glibc >= 2.34, so they run on Debian 12.
#
# Fast path: a complete cached tree is printed at once (no apt, no network).
# Otherwise the packages come through a private apt configuration (sources
# list, lists, archive cache and state under the cache dir; the machine's own
# apt configuration and /var/cache/apt are not touched), from the mirror the
# machine's apt sources already name (scripts/debian-mirror.sh), and apt checks
# them against the signed trixie index.
#
# Environment:
#   CC_MIMALLOC3_CACHE     cache root (default $HOME/.cache/concurrent_collections)
#   CC_MIMALLOC3_REFRESH=1 skip the fast path: ask trixie for its current version
#   CC_DEBIAN_MIRROR       mirror to use instead of the one in the apt sources
set -euo pipefail
exec 3>&1 1>&2

log() { echo "fetch-mimalloc3: $*" >&2; }
die() { echo "fetch-mimalloc3: ERROR: $*" >&2; exit 1; }

CACHE=${CC_MIMALLOC3_CACHE:-${HOME:?HOME is not set}/.cache/concurrent_collections}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
SUITE=trixie
PKGS=(libmimalloc3 libmimalloc-dev)

# A tree is complete when the stamp exists (written after both packages were
# unpacked and the header and library were found).
find_cached() {
  local d best=""
  [ -d "$CACHE" ] || return 0
  while IFS= read -r d; do
    [ -f "$d/.cc-complete" ] && best=$d
  done < <(find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name 'mimalloc-3*' 2>/dev/null | sort -V)
  [ -z "$best" ] || echo "$best"
}
finish() { log "mimalloc 3 tree: $1"; echo "$1" >&3; exit 0; }

if [ "${CC_MIMALLOC3_REFRESH:-0}" != 1 ]; then
  d=$(find_cached); [ -z "$d" ] || finish "$d"
fi

. "$(dirname "$0")/debian-mirror.sh"
MIRROR=$(apt_mirror)
[ -n "$MIRROR" ] || die "no Debian mirror in the apt sources; set CC_DEBIAN_MIRROR"
[ -r "$KEYRING" ] || die "$KEYRING not found: apt-get install debian-archive-keyring"

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd -P)
exec 9>"$CACHE/.fetch-mimalloc3.lock"
flock 9
if [ "${CC_MIMALLOC3_REFRESH:-0}" != 1 ]; then
  d=$(find_cached); [ -z "$d" ] || finish "$d"     # another run fetched it meanwhile
fi

APT=$CACHE/apt-trixie
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/state" "$APT/dl"
# apt downloads as the unprivileged _apt user when run as root: let it write.
chmod 0755 "$CACHE" "$APT" "$APT/dl"
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$APT/dl" "$APT/lists/partial"; fi
: >"$APT/state/status"   # an empty dpkg status: apt resolves nothing against the machine
cat >"$APT/trixie.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE
Components: main
Signed-By: $KEYRING
EOF
APT_OPTS=(
  -o "Dir::Etc::sourcelist=$APT/trixie.sources"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State=$APT/state"
  -o "Dir::State::Lists=$APT/lists"
  -o "Dir::State::status=$APT/state/status"
  -o "Dir::Cache=$APT"
  -o "Dir::Cache::archives=$APT/archives"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
  -o "APT::Architecture=amd64" -o "APT::Architectures=amd64"
  -o "Acquire::Languages=none"
  -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
  -o "Acquire::http::Timeout=20" -o "Acquire::Retries=1"
  -o "APT::Update::Error-Mode=any"
)

log "fetching the $SUITE package index from $MIRROR (private apt config under $APT)"
timeout 600 apt-get "${APT_OPTS[@]}" update >"$APT/update.log" 2>&1 \
  || { cat "$APT/update.log" >&2; die "could not fetch the $SUITE index (network? keyring?)"; }

ver=$(apt-cache "${APT_OPTS[@]}" show --no-all-versions libmimalloc-dev 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
[ -n "$ver" ] || die "libmimalloc-dev not in the $SUITE index"
case $ver in 3.*) ;; *) die "$SUITE's libmimalloc-dev is $ver, not 3.x" ;; esac
ROOT=$CACHE/mimalloc-$ver
log "$SUITE has libmimalloc-dev $ver"
if [ -f "$ROOT/.cc-complete" ]; then finish "$ROOT"; fi

rm -f "$APT"/dl/*.deb
( cd "$APT/dl" && timeout 600 apt-get "${APT_OPTS[@]}" download "${PKGS[@]}" ) >"$APT/download.log" 2>&1 \
  || { cat "$APT/download.log" >&2; die "apt-get download ${PKGS[*]} failed"; }

rm -rf "$ROOT"; mkdir -p "$ROOT"
for p in "${PKGS[@]}"; do
  deb=$(ls "$APT"/dl/"${p}"_*.deb 2>/dev/null | head -n1)
  [ -n "$deb" ] || die "$p: no .deb after apt-get download"
  dpkg-deb -x "$deb" "$ROOT"
done
# The -dev package's libmimalloc.so is a relative symlink into the runtime
# package: both are unpacked into one tree, so it resolves there.
[ -f "$ROOT/usr/include/mimalloc.h" ] || die "no usr/include/mimalloc.h in $ROOT"
lib=$(find "$ROOT/usr/lib" -name 'libmimalloc.so' | head -n1)
[ -n "$lib" ] && [ -e "$lib" ] || die "no libmimalloc.so in $ROOT"
printf 'debian=%s\nfetched=%s\n' "$ver" "$(date -u +%FT%TZ)" >"$ROOT/.cc-complete"
rm -f "$APT"/dl/*.deb
finish "$ROOT"
