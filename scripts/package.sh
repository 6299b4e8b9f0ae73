#!/usr/bin/env bash
# make package: a .deb and an .rpm of svcnat in $DIST (default dist/), built
# with nfpm as a Go tool (go tool nfpm): no system packaging tools needed.
# The binary is static and reproducible: CGO_ENABLED=0, -trimpath, no build
# id, the version stamped; file times are the last commit's
# (SOURCE_DATE_EPOCH), so the same commit gives the same packages.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
DIST=${DIST:-dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
# Package versions start with a digit: v1.2.3 -> 1.2.3; a commit -> 0.0.0~gitHASH.
case "$VERSION" in
	v[0-9]*) PKG_VERSION=${VERSION#v} ;;
	[0-9]*) PKG_VERSION=$VERSION ;;
	*) PKG_VERSION=0.0.0~git${VERSION//-/.} ;;
esac
export DIST PKG_VERSION
export GOARCH=${GOARCH:-$($GO env GOARCH)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

rm -rf "$DIST" && mkdir -p "$DIST"
CGO_ENABLED=0 $GO build -trimpath -buildvcs=false \
	-ldflags "-s -w -buildid= -X github.com/svcnat/svcnat/internal/buildinfo.version=$VERSION" \
	-o "$DIST/svcnat" ./cmd/svcnat
# The man page and completions come from the binary's own command
# definitions, as --help does.
"$DIST/svcnat" man | gzip -9n > "$DIST/svcnat.8.gz"
for sh in bash zsh fish; do "$DIST/svcnat" completion "$sh" > "$DIST/completion.$sh"; done
for p in deb rpm; do
	$GO tool nfpm package --config packaging/nfpm.yaml --packager "$p" --target "$DIST/" >/dev/null
done
ls "$DIST"/*.deb "$DIST"/*.rpm
