#!/usr/bin/env bash
# Installs helm (pinned) for the chart checks in test/helm.test.ts. No binary download is
# possible here, so helm is built from source with `go install` through the Go module
# proxy into $GOBIN ($HOME/go/bin), which later runs reuse. Idempotent; quiet on success.
set -euo pipefail

HELM_VERSION=v3.19.0
# The Kubernetes version helm assumes when no cluster is asked (helm template, lint,
# install --dry-run). helm's own Makefile derives it from its client-go (v0.34.0 in
# v3.19.0 -> 1.34); a bare `go install` would leave it at 1.20 and the version string
# at "v3.19", so both are set here as in helm's release builds.
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=34

export GOPATH="${GOPATH:-$HOME/go}"
export GOBIN="${GOBIN:-$GOPATH/bin}"
export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0
export PATH="$GOBIN:/usr/local/go/bin:$PATH"

installed_version() {
  helm version --template '{{ .Version }}' 2>/dev/null
}

if [ "$(installed_version || true)" = "$HELM_VERSION" ]; then
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-helm: go is not installed (looked on PATH and in /usr/local/go/bin)" >&2
  exit 1
fi

ldflags="-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=$HELM_K8S_MAJOR -X $pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$log" 2>&1; then
  echo "install-helm: go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
if [ "$(installed_version || true)" != "$HELM_VERSION" ]; then
  echo "install-helm: built $GOBIN/helm, but '$(command -v helm) version' does not report $HELM_VERSION" >&2
  echo "  (another helm earlier on PATH? $(command -v helm))" >&2
  exit 1
fi
