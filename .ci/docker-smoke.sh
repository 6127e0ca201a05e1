#!/usr/bin/env bash
# Smoke test of the Docker image's build steps, without a Docker engine (none runs here):
# a clean temporary copy of the build context, the Dockerfile's steps (npm ci, npm run
# build, npm prune --omit=dev), the runtime stage's layout, then the gateway started as
# the image starts it (NODE_ENV=production, node dist/cli.js start --config ...) on the
# shipped default config. Passes when /healthz and /readyz answer 200, an allowed preflight
# is answered, and SIGTERM ends the process with exit 0.
# Quiet on success; on failure says which step failed and shows its log.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

work=$(mktemp -d "${TMPDIR:-/tmp}/corsgate-docker-smoke.XXXXXX")
pid=''
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() { # fail MESSAGE [LOGFILE]
  echo "docker-smoke: $1" >&2
  if [ -n "${2:-}" ] && [ -s "$2" ]; then echo "---- last lines of $2:" >&2; tail -n 40 "$2" >&2; fi
  exit 1
}
step() { # step NAME COMMAND... (output to a log, shown only on failure)
  local name=$1; shift
  local log="$work/$name.log"
  "$@" >"$log" 2>&1 || fail "step '$name' failed: $*" "$log"
}

# 1. The build context: what the Dockerfile COPYs from it (the same paths .dockerignore
#    allows; test/dockerfile.test.ts checks that the two agree), from the working tree.
mapfile -t sources < <(awk '
  toupper($1) == "COPY" && $0 !~ /--from=/ {
    n = 0; for (i = 2; i <= NF; i++) if ($i !~ /^--/) args[++n] = $i
    for (i = 1; i < n; i++) print args[i]
  }' Dockerfile | sort -u)
[ "${#sources[@]}" -gt 0 ] || fail "found no COPY sources in the Dockerfile"
mkdir -p "$work/build"
for src in "${sources[@]}"; do
  [ -e "$src" ] || fail "the Dockerfile copies $src, which does not exist"
  mkdir -p "$work/build/$(dirname "$src")"
  cp -R "$src" "$work/build/$src"
done
find "$work/build" -name '*.test.ts' -delete   # .dockerignore keeps tests out

# 2. The build stage.
cd "$work/build"
step npm-ci npm ci --ignore-scripts --no-audit --no-fund --prefer-offline
step build npm run build
step prune npm prune --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline
[ -f dist/cli.js ] || fail "npm run build produced no dist/cli.js"

# 3. The runtime stage: only package.json, production node_modules, dist and config.
mkdir -p "$work/app" "$work/etc/corsgate"
cp package.json "$work/app/"
cp -R node_modules dist config "$work/app/"
cp config/default.yaml "$work/etc/corsgate/config.yaml"
cd "$work/app"

free_port() {
  node -e "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}
port=$(free_port)
admin=$(free_port)
[ "$port" != "$admin" ] || admin=$(free_port)

# 4. Start it as the image's ENTRYPOINT + CMD do (tini only forwards signals).
log="$work/gateway.log"
env -u CORSGATE_CONFIG -u CORSGATE_REDIS_URL -u CORSGATE_UPSTREAM -u CORSGATE_ORIGINS \
  NODE_ENV=production CORSGATE_HOST=127.0.0.1 CORSGATE_PORT="$port" CORSGATE_ADMIN_PORT="$admin" \
  node dist/cli.js start --config "$work/etc/corsgate/config.yaml" >"$log" 2>&1 &
pid=$!

status_of() { # status_of URL METHOD ["Name: value"...] -> "STATUS ALLOW-ORIGIN"
  node -e "
    const [url, method, ...hs] = process.argv.slice(1)
    const headers = Object.fromEntries(hs.map((h) => [h.slice(0, h.indexOf(':')), h.slice(h.indexOf(':') + 1).trim()]))
    fetch(url, { method, headers, signal: AbortSignal.timeout(2000) })
      .then((r) => console.log(r.status + ' ' + (r.headers.get('access-control-allow-origin') ?? '-')), () => console.log('000 -'))
  " "$@"
}

deadline=$((SECONDS + 30))
until [ "$(status_of "http://127.0.0.1:$admin/healthz" GET)" = "200 -" ]; do
  kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; pid=''; fail "the gateway exited before /healthz answered" "$log"; }
  [ "$SECONDS" -lt "$deadline" ] || fail "/healthz on the admin port did not answer 200 within 30 s" "$log"
  sleep 0.3
done
ready=$(status_of "http://127.0.0.1:$admin/readyz" GET)
[ "$ready" = "200 -" ] || fail "/readyz answered '$ready', expected 200" "$log"
preflight=$(status_of "http://127.0.0.1:$port/" OPTIONS "Origin: http://localhost:3000" "Access-Control-Request-Method: POST")
[ "$preflight" = "204 http://localhost:3000" ] || fail "an allowed preflight got '$preflight', expected '204 http://localhost:3000'" "$log"
grep -q '"level":' "$log" || fail "no JSON (pino) log lines on the gateway's output" "$log"

# 5. SIGTERM: drain and exit 0.
kill -TERM "$pid"
deadline=$((SECONDS + 20))
while kill -0 "$pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the gateway did not exit within 20 s of SIGTERM" "$log"
  sleep 0.2
done
code=0; wait "$pid" || code=$?
pid=''
[ "$code" -eq 0 ] || fail "the gateway exited with $code after SIGTERM, expected 0" "$log"
