#!/usr/bin/env bash
# Builds the test-bed binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok, Flux controllers, External Secrets) from the Go module proxy into
# integration/.testbin (or $BOOTCORE_TESTBIN), and copies the data files the
# harness needs next to them (kwok stage configs, Flux CRDs).
#
# Each group is its own Go module under integration/tools/<group>/ because
# their dependency graphs differ (kubernetes pins its staging modules, etcd and
# the Flux controllers want newer grpc/otel/controller-runtime). A group is
# rebuilt only when one of its binaries is missing or its stamp (a hash of the
# group's go.mod, go.sum, build flags and Go version) changed.
# Cold build on 2 cores: ~9 min for etcd+kube+kwok, ~10 min more for Flux; external-secrets
# (929 packages) took 6m21s of CPU (user+sys) with an empty build cache, i.e. ~3-4 min on two
# idle cores (every provider linked it would be 2260 packages).
#
# Usage: testbin.sh [group...]   (default: all groups)
set -euo pipefail

tools=$(cd "$(dirname "$0")" && pwd)
out=${BOOTCORE_TESTBIN:-$tools/../.testbin}
mkdir -p "$out/bin" "$out/stamps"
out=$(cd "$out" && pwd)

# Two `make testbin` at once would write the same files: take turns.
exec 9>"$out/.lock"
if ! flock -n 9; then
	echo "testbin: another build holds $out/.lock, waiting"
	flock 9
fi

k8s_version=v1.35.4
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 -X k8s.io/component-base/version.gitTreeState=clean"

all_groups=(etcd kube kwok source-controller kustomize-controller helm-controller external-secrets)
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=("${all_groups[@]}")

# binaries of a group: "name=package" pairs.
group_bins() {
	case $1 in
	etcd) echo "etcd=go.etcd.io/etcd/server/v3" ;;
	kube) echo "kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler" ;;
	kwok) echo "kwok=sigs.k8s.io/kwok/cmd/kwok" ;;
	source-controller | kustomize-controller | helm-controller) echo "$1=github.com/fluxcd/$1" ;;
	# v0.20.4: the newest release the module proxy serves whole (see tools/external-secrets/go.mod).
	external-secrets) echo "external-secrets=github.com/external-secrets/external-secrets" ;;
	helm) echo "helm=helm.sh/helm/v3/cmd/helm" ;; # not in all_groups: only the benchmarks (bench.mk) use it
	*) echo "unknown group $1" >&2; exit 2 ;;
	esac
}

group_ldflags() {
	case $1 in
	kube) echo "$kube_ldflags" ;;
	*) echo "-s -w" ;;
	esac
}

# Data files copied from the module cache, found through the group's module.
copy_data() {
	local group=$1 dir
	case $group in
	kwok)
		dir=$(cd "$tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
		rm -rf "$out/kwok-stages" && mkdir -p "$out/kwok-stages"
		for s in node/fast node/heartbeat-with-lease pod/fast; do
			for f in "$dir/kustomize/stage/$s"/*.yaml; do
				[ "$(basename "$f")" = kustomization.yaml ] && continue
				cp "$f" "$out/kwok-stages/${s//\//-}-$(basename "$f")"
			done
		done
		chmod -R u+w "$out/kwok-stages"
		# kwok's Logs CRD: the test bed serves Flux controller logs as pod logs (testbed/podlogs.go).
		rm -rf "$out/crds/kwok" && mkdir -p "$out/crds/kwok"
		cp "$dir/kustomize/crd/bases/kwok.x-k8s.io_logs.yaml" "$out/crds/kwok/"
		chmod -R u+w "$out/crds/kwok"
		;;
	source-controller | kustomize-controller | helm-controller)
		dir=$(cd "$tools/$group" && go list -m -f '{{.Dir}}' "github.com/fluxcd/$group")
		rm -rf "$out/crds/$group" && mkdir -p "$out/crds/$group"
		cp "$dir"/config/crd/bases/*.yaml "$out/crds/$group/"
		chmod -R u+w "$out/crds/$group"
		;;
	esac
}

# Extra `go build` flags of a group, set up by group_prepare (run in a subshell per build).
group_prepare() {
	local group=$1 dir
	case $group in
	external-secrets)
		# v0.20.4 registers every provider and generator from two register packages, which every
		# controller imports. A copy of the module with tools/external-secrets/overlay/ in their
		# place links only the 1Password Connect provider and no generator (go build -overlay
		# cannot replace files in the module cache); -modfile adds the replace to that copy.
		# go list -m reports no Dir for a module not yet in the module cache (a cold CI machine).
		(cd "$tools/$group" && go mod download github.com/external-secrets/external-secrets)
		dir=$(cd "$tools/$group" && go list -m -f '{{.Dir}}' github.com/external-secrets/external-secrets)
		[ -n "$dir" ] || { echo "testbin: external-secrets: no module directory" >&2; exit 1; }
		# Not local: the EXIT trap of the build's subshell still needs it.
		prep_tmp=$(mktemp -d)
		trap 'chmod -R u+w "$prep_tmp"; rm -rf "$prep_tmp"' EXIT
		cp -r "$dir" "$prep_tmp/external-secrets"
		chmod -R u+w "$prep_tmp/external-secrets"
		cp "$tools/$group/overlay/provider-register.go" "$prep_tmp/external-secrets/pkg/provider/register/register.go"
		cp "$tools/$group/overlay/generator-register.go" "$prep_tmp/external-secrets/pkg/generator/register/register.go"
		cp "$tools/$group/go.mod" "$tools/$group/go.sum" "$prep_tmp/"
		echo "replace github.com/external-secrets/external-secrets => $prep_tmp/external-secrets" >>"$prep_tmp/go.mod"
		build_flags=(-modfile="$prep_tmp/go.mod")
		;;
	*) build_flags=() ;;
	esac
}

stamp_of() {
	local group=$1
	{
		cat "$tools/$group/go.mod" "$tools/$group/go.sum"
		[ -d "$tools/$group/overlay" ] && cat "$tools/$group"/overlay/*
		group_bins "$group"
		group_ldflags "$group"
		go env GOVERSION
	} | sha256sum | cut -d' ' -f1
}

for group in "${groups[@]}"; do
	stamp=$(stamp_of "$group")
	missing=
	for pair in $(group_bins "$group"); do
		[ -x "$out/bin/${pair%%=*}" ] || missing="$missing ${pair%%=*}"
	done
	if [ -z "$missing" ] && [ "$(cat "$out/stamps/$group" 2>/dev/null)" = "$stamp" ]; then
		echo "testbin: $group up to date"
		copy_data "$group"
		continue
	fi
	why="pin, flags or Go version changed"
	[ -n "$missing" ] && why="missing:$missing"
	echo "testbin: building $group ($why)"
	start=$SECONDS
	rm -f "$out/stamps/$group"
	for pair in $(group_bins "$group"); do
		name=${pair%%=*} pkg=${pair#*=}
		t0=$SECONDS
		echo "testbin:   go build $name ($pkg)"
		(group_prepare "$group" && cd "$tools/$group" && go build -trimpath "${build_flags[@]}" -ldflags "$(group_ldflags "$group")" -o "$out/bin/$name.tmp" "$pkg")
		mv "$out/bin/$name.tmp" "$out/bin/$name"
		echo "testbin:   $name built in $((SECONDS - t0))s"
	done
	copy_data "$group"
	echo "$stamp" >"$out/stamps/$group"
	echo "testbin: $group done in $((SECONDS - start))s"
done
