#!/usr/bin/env bash
# Builds the flux-operator (github.com/controlplaneio-fluxcd/flux-operator v0.58.1, cmd/operator)
# for bootcore agent's end-to-end tests into $BOOTCORE_TESTBIN/bin (default
# integration/.testbin/bin), and copies the Flux manifests its container image carries
# (config/data -> /data in the image) to $BOOTCORE_TESTBIN/flux-operator-data, its --storage-path,
# and its CRDs (config/crd/bases) to $BOOTCORE_TESTBIN/crds/flux-operator.
#
# Like the upstream Dockerfile it builds with GOFIPS140=latest: the operator exits at start when
# FIPS 140-3 mode is off. go.mod replaces go-containerregistry/pkg/authn/kubernetes: the
# pseudo-version flux-operator requires is not served by the module proxy (403); the replacement
# is the one source-controller v1.9.6 uses.
# The module zip lacks web/dist (the web UI is built by npm and only copied into the image),
# and web/embed.go embeds dist/*, so the build uses a copy of the module with a placeholder
# web/dist/index.html, through a temporary -modfile with a replace. The tests run the operator
# with --web-server-port=0.
#
# Rebuilt only when the binary is missing or the stamp (go.mod, go.sum, this script, Go version)
# changed, as testbin.sh does for the other groups.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${BOOTCORE_TESTBIN:-$here/../../.testbin}
mkdir -p "$out/bin" "$out/stamps"
out=$(cd "$out" && pwd)

stamp=$({ cat "$here/go.mod" "$here/go.sum" "$here/build.sh"; go env GOVERSION; } | sha256sum | cut -d' ' -f1)
if [ -x "$out/bin/flux-operator" ] && [ -d "$out/flux-operator-data/flux" ] && [ -d "$out/crds/flux-operator" ] && [ "$(cat "$out/stamps/flux-operator" 2>/dev/null)" = "$stamp" ]; then
	echo "testbin: flux-operator up to date"
	exit 0
fi
echo "testbin: building flux-operator"
start=$SECONDS
rm -f "$out/stamps/flux-operator"
dir=$(cd "$here" && go mod download -json github.com/controlplaneio-fluxcd/flux-operator | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
cp -r "$dir" "$tmp/flux-operator"
chmod -R u+w "$tmp/flux-operator"
mkdir -p "$tmp/flux-operator/web/dist"
echo '<!-- flux-operator web UI: not built for bootcore tests -->' >"$tmp/flux-operator/web/dist/index.html"
cp "$here/go.mod" "$here/go.sum" "$tmp/"
echo "replace github.com/controlplaneio-fluxcd/flux-operator => $tmp/flux-operator" >>"$tmp/go.mod"
(cd "$here" && GOFIPS140=latest GOFLAGS=-mod=mod go build -modfile="$tmp/go.mod" -trimpath -ldflags "-s -w" -o "$out/bin/flux-operator.tmp" github.com/controlplaneio-fluxcd/flux-operator/cmd/operator)
mv "$out/bin/flux-operator.tmp" "$out/bin/flux-operator"
rm -rf "$out/flux-operator-data" && mkdir -p "$out/flux-operator-data"
cp -r "$dir/config/data/." "$out/flux-operator-data/"
chmod -R u+w "$out/flux-operator-data"
rm -rf "$out/crds/flux-operator" && mkdir -p "$out/crds/flux-operator"
cp "$dir"/config/crd/bases/*.yaml "$out/crds/flux-operator/"
chmod -R u+w "$out/crds/flux-operator"
echo "$stamp" >"$out/stamps/flux-operator"
echo "testbin: flux-operator done in $((SECONDS - start))s"
