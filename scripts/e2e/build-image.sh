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
