#!/usr/bin/env bash
# Installs helm (pinned) for the chart checks in test/helm.test.ts. No binary download is
# possible here, so helm is built from source with `go install` through the Go module
# proxy, into $HOME/go/bin, which later runs reuse. Idempotent; quiet on success.
set -euo pipefail

HELM_VERSION=v3.19.0
export GOPATH="${GOPATH:-$HOME/go}"
export GOBIN="${GOBIN:-$GOPATH/bin}"
export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export PATH="$GOBIN:/usr/local/go/bin:$PATH"

# `go install` leaves helm's own version string unset ("v3.19"), so the version is
# read from the build info the Go toolchain writes into the binary.
installed_version() {
  local bin
  bin=$(command -v helm 2>/dev/null) || return 1
  helm version --short >/dev/null 2>&1 || return 1
  go version -m "$bin" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" { print $3 }'
}

if [ "$(installed_version || true)" = "$HELM_VERSION" ]; then
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-helm: go is not installed (looked on PATH and in /usr/local/go/bin)" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$log" 2>&1; then
  echo "install-helm: go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
if [ "$(installed_version || true)" != "$HELM_VERSION" ]; then
  echo "install-helm: installed helm at $GOBIN/helm but 'helm version' does not report $HELM_VERSION" >&2
  exit 1
fi
