#!/usr/bin/env bash
# Builds, or finds already built, every binary shipstack runs: the pulumi CLI,
# the Kubernetes provider plugin, etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok and metrics-server. Everything is built from the Go
# module proxy with the modules in this folder and cached outside the checkout
# under $SHIPSTACK_CACHE/toolchain/<name>-<version>, so a second run builds
# nothing. Prints each component's path and version at the end; the last line
# is machine-readable for the Makefile ("TOOLCHAIN_BIN=...").
#
# Usage: toolchain/build.sh [--quiet]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${SHIPSTACK_CACHE:-$HOME/.cache/shipstack}
bin="$cache/bin"            # one folder of symlinks, put on PATH by the Makefile
pulumi_home=${PULUMI_HOME:-$cache/pulumi-home}
mkdir -p "$bin" "$cache/toolchain" "$cache/logs"

export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local
export CGO_ENABLED=0

say() { printf '[toolchain] %s\n' "$*" >&2; }

# Runs a long build, printing a heartbeat so it never looks frozen; the full
# compiler output goes to a log file named in the message if it fails.
with_progress() {
  local label=$1 log=$2; shift 2
  local start=$SECONDS
  say "building $label (cold builds take minutes on 2 cores; log: $log)"
  "$@" >"$log" 2>&1 &
  local pid=$! next=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      say "  ... $label still building, $((SECONDS - start)) s"
      next=$((SECONDS + 30))
    fi
  done
  if ! wait "$pid"; then
    say "FAILED to build $label; last lines of $log:"
    tail -n 30 "$log" >&2
    say "Fix the error above (or delete $cache/toolchain to start clean) and run 'make toolchain' again."
    exit 1
  fi
  say "built $label in $((SECONDS - start)) s"
}

# build NAME VERSION MODULE_DIR PACKAGE [LDFLAGS]: go build PACKAGE inside the
# wrapper module MODULE_DIR into the versioned cache folder, unless it exists.
build() {
  local name=$1 version=$2 moddir=$3 pkg=$4 ldflags=${5:-}
  local out="$cache/toolchain/$name-$version/$name"
  if [ ! -x "$out" ]; then
    mkdir -p "$(dirname "$out")"
    with_progress "$name $version" "$cache/logs/$name-$version.log" \
      bash -c 'cd "$1" && go build -trimpath -tags osusergo,grpcnotrace -ldflags "-s -w $2" -o "$3.tmp" "$4" && mv "$3.tmp" "$3"' \
      _ "$moddir" "$ldflags" "$out" "$pkg"
  fi
  ln -sfn "$out" "$bin/$name"
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# --- pulumi CLI -------------------------------------------------------------
# A pulumi already on PATH (outside our own bin folder) is used when it is at
# least the version the Python SDK needs.
ambient=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$bin" | paste -sd:) command -v pulumi || true)
if [ -n "$ambient" ] && v=$("$ambient" version 2>/dev/null) && version_ge "${v#v}" "$PULUMI_MIN_VERSION"; then
  say "using the pulumi $v already on PATH at $ambient"
  ln -sfn "$ambient" "$bin/pulumi"
else
  build pulumi "$PULUMI_VERSION" "$here/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
fi

# --- Kubernetes provider ----------------------------------------------------
provider_out="$cache/toolchain/pulumi-resource-kubernetes-$PULUMI_K8S_VERSION/pulumi-resource-kubernetes"
if [ ! -x "$provider_out" ]; then
  src=$(cd "$here/provider" && go mod download -json "github.com/pulumi/pulumi-kubernetes/provider/v4@$PULUMI_K8S_PROVIDER_MODULE" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  work="$cache/toolchain/provider-build"
  rm -rf "$work" && mkdir -p "$work"
  cp "$here/provider/go.mod" "$here/provider/go.sum" "$here/provider/main.go" "$work/"
  # The embedded schema carries the plugin version, as upstream's generate.go does.
  python3 - "$src/cmd/pulumi-resource-kubernetes" "$work" "$PULUMI_K8S_VERSION" <<'PY'
import json, sys, pathlib
src, dst, version = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
schema = json.loads((src / "schema.json").read_text())
schema["version"] = version
(dst / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
mapping = json.loads((src / "terraform-mapping.json").read_text())
(dst / "terraform-mapping-embed.json").write_text(json.dumps(mapping, separators=(",", ":")))
PY
  build pulumi-resource-kubernetes "$PULUMI_K8S_VERSION" "$work" . \
    "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_K8S_VERSION"
  rm -rf "$work"
fi
# Not on PATH: an ambient plugin would win over the versioned one in PULUMI_HOME.
rm -f "$bin/pulumi-resource-kubernetes"

# Installed into shipstack's own Pulumi home under the exact version the Python
# SDK asks for, so the engine never looks for it on the network.
plugin_dir="$pulumi_home/plugins/resource-kubernetes-v$PULUMI_K8S_VERSION"
if [ ! -x "$plugin_dir/pulumi-resource-kubernetes" ]; then
  say "installing the kubernetes $PULUMI_K8S_VERSION plugin into $pulumi_home"
  PULUMI_HOME="$pulumi_home" PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
    "$bin/pulumi" plugin install resource kubernetes "$PULUMI_K8S_VERSION" --file "$provider_out" >&2
fi

# --- the local cluster --------------------------------------------------------
kube_ld="-X k8s.io/component-base/version.gitVersion=v$KUBERNETES_VERSION"
kube_ld+=" -X k8s.io/component-base/version.gitMajor=${KUBERNETES_VERSION%%.*}"
minor=${KUBERNETES_VERSION#*.}; kube_ld+=" -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
kube_ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
build etcd "$ETCD_VERSION" "$here/kube" ./etcd
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  build "$c" "$KUBERNETES_VERSION" "$here/kube" "k8s.io/kubernetes/cmd/$c" "$kube_ld"
done
build kwok "$KWOK_VERSION" "$here/kwok" sigs.k8s.io/kwok/cmd/kwok \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
kwok_src=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
cp "$kwok_src/kustomize/metrics/resource/metrics-resource.yaml" "$bin/kwok-metrics-resource.yaml"
# kwok's default pod lifecycle, which toolchain/cluster.py extends (images named
# "never-ready" never become Ready, to test failed rollouts).
mkdir -p "$bin/kwok-pod-stages"
cp "$kwok_src"/kustomize/stage/pod/fast/pod-{ready,complete,delete}.yaml "$bin/kwok-pod-stages/"
build metrics-server "$METRICS_SERVER_VERSION" "$here/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server \
  "-X k8s.io/client-go/pkg/version.gitVersion=v$METRICS_SERVER_VERSION"

# --- a registry for the auto-update tests ---------------------------------------
build registry "$REGISTRY_VERSION" "$here/registry" github.com/distribution/distribution/v3/cmd/registry \
  "-X github.com/distribution/distribution/v3/version.version=v$REGISTRY_VERSION"
build crane "$CRANE_VERSION" "$here/registry" github.com/google/go-containerregistry/cmd/crane \
  "-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=v$CRANE_VERSION"

if [ "${1:-}" != "--quiet" ]; then
  printf '%-28s %-10s %s\n' component version path
  printf '%-28s %-10s %s\n' pulumi "$("$bin/pulumi" version)" "$(readlink -f "$bin/pulumi")"
  printf '%-28s %-10s %s\n' pulumi-resource-kubernetes "v$PULUMI_K8S_VERSION" "$plugin_dir"
  printf '%-28s %-10s %s\n' etcd "v$ETCD_VERSION" "$(readlink -f "$bin/etcd")"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    printf '%-28s %-10s %s\n' "$c" "$("$bin/$c" --version | awk '{print $2}')" "$(readlink -f "$bin/$c")"
  done
  printf '%-28s %-10s %s\n' kwok "v$KWOK_VERSION" "$(readlink -f "$bin/kwok")"
  printf '%-28s %-10s %s\n' metrics-server "v$METRICS_SERVER_VERSION" "$(readlink -f "$bin/metrics-server")"
  printf '%-28s %-10s %s\n' registry "v$REGISTRY_VERSION" "$(readlink -f "$bin/registry")"
  printf '%-28s %-10s %s\n' crane "v$CRANE_VERSION" "$(readlink -f "$bin/crane")"
  printf '%-28s %-10s %s\n' PULUMI_HOME "" "$pulumi_home"
fi
