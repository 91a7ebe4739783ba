# Sourced by scripts that fetch from Debian's archive through a private apt
# configuration (build-python313t.sh, fetch-mimalloc3.sh).
#
# apt_mirror prints the Debian mirror this machine's apt already uses: the
# first URI of the deb822 .sources files, else of the one-line sources.list
# entries, leaving out the security archive. No host name is written in the
# repository; CC_DEBIAN_MIRROR overrides.
apt_mirror() {
  local u
  if [ -n "${CC_DEBIAN_MIRROR:-}" ]; then echo "${CC_DEBIAN_MIRROR%/}"; return; fi
  u=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' |
      grep -v -- 'security' | head -n1)
  [ -n "$u" ] || u=$(grep -hE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      grep -oE '[a-z]+://[^ ]+' | grep -v -- 'security' | head -n1)
  echo "${u%/}"
}
