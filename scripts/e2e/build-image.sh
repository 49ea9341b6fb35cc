#!/bin/sh
# Builds the image the e2e compose files run, meshd-e2e:latest, FROM scratch:
# the static meshd binary (CGO_ENABLED=0), busybox-static from Debian for the
# client hosts' shell and demo web server, and the demo's config files. No
# registry is needed: nothing is pulled.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ctx="$here/.build"
GO=${GO:-go}
mkdir -p "$ctx"

(cd "$root" && CGO_ENABLED=0 "$GO" build -trimpath -o "$ctx/meshd" ./cmd/meshd)

# The previous release's binary, for the rolling upgrade: built from that
# commit of this repository's own history (scripts/e2e/previous-release).
prev=$(grep -v '^#' "$here/previous-release" | head -n 1 | tr -d ' ')
if [ ! -x "$ctx/meshd-prev" ] || [ "$(cat "$ctx/meshd-prev.commit" 2>/dev/null)" != "$prev" ]; then
	git -C "$root" cat-file -e "$prev^{commit}" 2>/dev/null || git -C "$root" fetch -q --unshallow 2>/dev/null || true
	if git -C "$root" cat-file -e "$prev^{commit}" 2>/dev/null; then
		src="$ctx/prev-src"
		rm -rf "$src" && mkdir -p "$src"
		git -C "$root" archive "$prev" | tar -x -C "$src"
		(cd "$src" && CGO_ENABLED=0 "$GO" build -trimpath -o "$ctx/meshd-prev" ./cmd/meshd)
		rm -rf "$src"
		echo "$prev" > "$ctx/meshd-prev.commit"
	else
		# An empty /bin/meshd-prev: TestRollingUpgrade says loudly that it
		# cannot run.
		echo "build-image: WARNING: the previous release $prev is not in this clone's history; the rolling upgrade cannot run" >&2
		: > "$ctx/meshd-prev"
		rm -f "$ctx/meshd-prev.commit"
	fi
fi

if [ ! -x "$ctx/busybox" ]; then
	if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
		echo "build-image: busybox-static comes from Debian's packages, and this machine has no apt-get/dpkg-deb" >&2
		exit 1
	fi
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# apt-get download needs no root once the package lists are there;
	# refresh them only when the first try fails.
	if ! (cd "$tmp" && apt-get download busybox-static >/dev/null 2>&1); then
		apt-get update -qq
		(cd "$tmp" && apt-get download busybox-static)
	fi
	dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/x"
	cp "$tmp/x/bin/busybox" "$ctx/busybox"
fi

rm -rf "$ctx/www" "$ctx/meshd.d"
cp -R "$here/image/www" "$here/image/meshd.d" "$ctx/"
docker build -q -t meshd-e2e:latest -f "$here/Dockerfile" "$ctx" >/dev/null
echo "build-image: meshd-e2e:latest built from $(cd "$root" && git describe --always --dirty 2>/dev/null || echo unknown)"
