#!/usr/bin/env bash
# Lints the Dockerfile. hadolint is not packaged for Debian and the CI machine reaches only
# the npm registry, Debian and the Go module proxy, so the lint is dockerfile-utils (npm,
# the validator behind the Dockerfile language server; a devDependency). Its warnings count
# as failures. The project's own image rules (multi-stage, numeric USER 1000, tini, NODE_ENV, the health probe, ...)
# are asserted by test/dockerfile.test.ts under `npm test`.
# Quiet on success; prints the findings and exits 1 on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

lint=node_modules/.bin/dockerfile-utils
if [ ! -x "$lint" ]; then
  echo "lint-dockerfile: $lint is missing; run 'npm ci' first" >&2
  exit 1
fi

status=0
findings=$("$lint" lint Dockerfile 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$findings" ]; then
  echo "lint-dockerfile: Dockerfile has findings (exit $status):" >&2
  echo "$findings" >&2
  exit 1
fi
