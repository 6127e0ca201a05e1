#!/usr/bin/env bash
# Builds the container image from the Dockerfile, unmodified, with podman (Debian's
# packages, no daemon), and runs it as the Helm chart does, checking what a deployment
# relies on. No container registry is reachable here, so the Node base image the FROM
# names is a stand-in made by .ci/image-base.sh (which says what it mirrors and what it
# cannot) and cached under ~/.cache/corsgate-image.
#
# Run checks, with the chart's securityContext as flags (--read-only, --cap-drop=ALL,
# no-new-privileges, --user 1000:1000, a 16 MiB tmpfs /tmp), the config mounted read-only
# over /etc/corsgate as the chart's ConfigMap is, and a real upstream on the host's loopback
# (--network host: all traffic stays on 127.0.0.1):
#   allowed preflight and GET, denied origin 403, upstream CORS headers stripped, websocket
#   upgrade through the container; /healthz, /readyz and the image's HEALTHCHECK healthy with a
#   non-default admin port set only in the mounted file; PID 1 is tini, the user is not
#   root, writes outside /tmp fail; SIGTERM with a request in flight: the request
#   completes and the container exits 0 within the grace period; `validate` and `check`
#   work inside the image.
# Image checks: HEALTHCHECK kept (docker format), numeric user, nothing from the build's
# CA mount left behind, no src/, test/, bench/, .git or dev dependencies in /app.
#
# Prints each step and the measured figures; on failure says which check failed, shows
# the container's log and exits 1. Needs root (rootful podman) and `npm ci` done.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export DEBIAN_FRONTEND=noninteractive

fail() { # fail MESSAGE
  echo "image: FAILED: $1" >&2
  if [ -n "${ctr:-}" ] && podman container exists "$ctr" 2>/dev/null; then
    echo "---- container log ($ctr), last lines:" >&2; podman logs --tail 40 "$ctr" >&2 2>&1 || true
  fi
  if [ -n "${upstream_log:-}" ] && [ -s "$upstream_log" ]; then echo "---- upstream log:" >&2; tail -n 20 "$upstream_log" >&2; fi
  exit 1
}
say() { printf '   %s\n' "$*"; }
now_ms() { date +%s%3N; }
# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.1 s until COMMAND succeeds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(now_ms) + limit * 1000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "$what: not within $limit s"
    sleep 0.1
  done
}

[ "$(id -u)" = 0 ] || fail "needs root (rootful podman; CI runs as root)"
[ -d node_modules/ws ] || fail "node_modules/ws is missing: run npm ci first"

# ---- 1. tools, from Debian's packages ----
missing=()
for tool in podman:podman buildah:buildah runc:runc debootstrap:debootstrap curl:curl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "   installing ${missing[*]}"
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null || fail "apt-get install ${missing[*]}"
fi
# runc, not crun (crun fails here on setrlimit RLIMIT_NOFILE and on hybrid cgroups), and
# ulimits this machine allows; this file replaces the system's containers.conf for this run.
export CONTAINERS_CONF="$repo/.ci/containers.conf"
say "$(podman --version), $(runc --version | head -n 1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/corsgate-image.XXXXXX")
ctr='' upstream_pid='' upstream_log=''
cleanup() {
  if [ -n "$ctr" ]; then podman rm -f -t 0 "$ctr" >/dev/null 2>&1 || true; fi
  if [ -n "$upstream_pid" ]; then kill "$upstream_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---- 2. the base image the FROM names: a stand-in, cached ----
base=$(sed -nE 's/^ARG NODE_IMAGE=(\S+)$/\1/p' Dockerfile | head -n 1)
[ -n "$base" ] || fail "found no 'ARG NODE_IMAGE=' in the Dockerfile"
t0=$(now_ms)
bash .ci/image-base.sh "$base" || fail "could not make the stand-in base image $base"
say "base $base ready in $(( ($(now_ms) - t0) / 1000 )) s (npm $(podman image inspect --format '{{ index .Labels "org.corsgate.stand-in.npm" }}' "docker.io/library/$base"))"

# ---- 3. build, with the Dockerfile as it is ----
# npm ci inside the build must trust this sandbox's TLS interception: the host's CA bundle
# and an npmrc naming it are bind-mounted over /usr/local/etc (npm's global config
# folder, already there in the base, so the mount creates no mount point), for the build
# only; checked below to leave nothing behind.
ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$ca" ] || fail "no host CA bundle at $ca"
mkdir -p "$work/npm-etc"
cp "$ca" "$work/npm-etc/host-ca.pem"
printf 'cafile=/usr/local/etc/host-ca.pem\n' >"$work/npm-etc/npmrc"
image=localhost/corsgate:ci
t0=$(now_ms)
podman build --format docker --pull=never --network host --layers \
  -v "$work/npm-etc:/usr/local/etc:ro" -t "$image" . >"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log" >&2; fail "podman build"; }
build_s=$(( ($(now_ms) - t0) / 1000 ))
say "built $image in $build_s s"

# ---- 4. what the image is ----
inspect() { podman image inspect --format "$1" "$image"; }
[ "$(inspect '{{ .Config.User }}')" = "1000:1000" ] || fail "image user is '$(inspect '{{ .Config.User }}')', expected 1000:1000"
hc=$(inspect '{{ json .Config.Healthcheck }}')
[[ $hc == *'"node","dist/cli/health.js"'* ]] || fail "the image has no 'corsgate health' HEALTHCHECK (got $hc): built without --format docker?"
size_mb=$(( $(inspect '{{ .Size }}') / 1000000 ))
base_mb=$(( $(podman image inspect --format '{{ .Size }}' "docker.io/library/$base") / 1000000 ))
# podman's stderr only says (each time) that it has no systemd to schedule the HEALTHCHECK
# with; it is shown when the command fails.
in_image() {
  podman run --rm --network none --entrypoint sh "$image" -c "$1" 2>"$work/podman.err" \
    || { cat "$work/podman.err" >&2; fail "podman run $image sh -c '$1'"; }
}
# The CA mount's folder and the CA paths must be as the base has them.
ca_paths='ls -lA /usr/local/etc; ls -ld /etc/ssl/certs /etc/ssl/certs/* 2>/dev/null || true; ls -A /app/.npmrc /root/.npmrc 2>/dev/null || true'
traces=$(in_image "$ca_paths")
base_paths=$(podman run --rm --network none --entrypoint sh "docker.io/library/$base" -c "$ca_paths" 2>/dev/null) || fail "cannot list $base"
[ "$traces" = "$base_paths" ] || fail "the build's CA mount left traces in the image: $(diff <(echo "$base_paths") <(echo "$traces") | tail -n +2 | tr '\n' ' ')"
top=$(in_image 'cd /app && ls -A | tr "\n" " "')
[ "$top" = "config dist node_modules package.json " ] || fail "/app holds '$top', expected config dist node_modules package.json"
strays=$(in_image 'cd /app && find . -path ./node_modules -prune -o \( -name "*.ts" -o -name .git -o -name test -o -name bench -o -name src \) -print')
[ -z "$strays" ] || fail "/app has sources or tests: $strays"
# Dev-only packages, as the lockfile marks them, must be absent.
node -e '
  const lock = require("./package-lock.json")
  for (const [path, p] of Object.entries(lock.packages)) if (p.dev && /^node_modules\/[^/]+(\/[^/]+)?$/.test(path) && !path.includes("/node_modules/", 13)) console.log(path)
' >"$work/dev-only.txt"
in_image 'cd /app && for d in node_modules/* node_modules/@*/*; do [ -d "$d" ] && echo "$d"; done' >"$work/shipped.txt"
dev_in_image=$(grep -Fxf "$work/dev-only.txt" "$work/shipped.txt" || true)
[ -z "$dev_in_image" ] || fail "dev dependencies in the image: $(echo $dev_in_image)"
maps=$(in_image 'find /app/dist -name "*.map" | wc -l')
app_kb=$(in_image 'du -sk /app | cut -f1')
say "image $size_mb MB (base $base_mb MB, /app $(( app_kb / 1024 )) MiB: $(wc -l <"$work/shipped.txt") packages, $maps source maps), user 1000:1000, HEALTHCHECK kept, no build traces, no dev dependencies"

# ---- 5. run it: an upstream on the host, the chart's security settings ----
free_port() { node -e "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
upstream_log="$work/upstream.log"
node .ci/image-upstream.mjs >"$upstream_log" 2>&1 &
upstream_pid=$!
wait_for 10 "the upstream to listen" grep -q '"port"' "$upstream_log"
up_port=$(sed -nE 's/.*"port":([0-9]+).*/\1/p' "$upstream_log" | head -n 1)
port=$(free_port)
admin=$(free_port)
while [ "$admin" = "$port" ] || [ "$admin" = 9090 ]; do admin=$(free_port); done

allowed=https://app.example.com
denied=https://evil.example.net
mkdir -p "$work/etc-corsgate"
cat >"$work/etc-corsgate/config.yaml" <<EOF
server: { host: 127.0.0.1, port: $port, shutdownGraceMs: 10000 }
admin:  { host: 127.0.0.1, port: $admin }   # not the default 9090: the HEALTHCHECK must read it here
log:    { level: info }
policies:
  default:
    origins: ["$allowed"]
    credentials: false
routes:
  - { path: /ws/, upstream: "http://127.0.0.1:$up_port", websocket: true }
  - { path: /,    upstream: "http://127.0.0.1:$up_port" }
EOF
chmod -R a+rX "$work/etc-corsgate"
# podman schedules HEALTHCHECKs with systemd timers and no systemd runs here (it says so
# on stderr, kept in the run's logs); the check is run by hand with `podman healthcheck run`.
secure=(--network host --read-only --cap-drop=ALL --security-opt no-new-privileges
  --user 1000:1000 --tmpfs /tmp:rw,size=16m,mode=1777 -v "$work/etc-corsgate:/etc/corsgate:ro")

ctr="corsgate-ci-$$"
t0=$(now_ms)
podman run -d --name "$ctr" "${secure[@]}" "$image" >"$work/run.log" 2>&1 || { cat "$work/run.log" >&2; fail "podman run"; }
healthz() { curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$admin/healthz"; }
running() { [ "$(podman inspect --format '{{ .State.Running }}' "$ctr")" = true ]; }
deadline=$(( $(now_ms) + 30000 ))
until healthz; do
  running || fail "the container exited before /healthz answered"
  [ "$(now_ms)" -lt "$deadline" ] || fail "/healthz on the mounted file's admin port $admin did not answer within 30 s"
  sleep 0.05
done
start_ms=$(( $(now_ms) - t0 ))
curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$admin/readyz" || fail "/readyz on the admin port is not 200"
# Node's own part: from the container's start to the gateway's "corsgate listening" line.
started=$(podman inspect --format '{{ .State.StartedAt.UnixMilli }}' "$ctr")
listening=$(podman logs "$ctr" 2>/dev/null | sed -nE 's/.*"time":([0-9]+),.*"msg":"corsgate listening".*/\1/p' | head -n 1)
[ -n "$listening" ] || fail "no 'corsgate listening' line in the container's log"
node_ms=$(( listening - started ))
say "/healthz on admin port $admin answered $start_ms ms after podman run ($node_ms ms from the container's start to 'corsgate listening')"

# The process, seen from inside: tini is PID 1, node its child, neither root.
node_pid=$(podman exec "$ctr" sh -c 'for p in /proc/[0-9]*; do case "$(tr "\0" " " <$p/cmdline)" in node\ *dist/cli.js*) echo ${p#/proc/};; esac; done' | head -n 1)
[ -n "$node_pid" ] || fail "no 'node dist/cli.js' process in the container"
idle_rss_kb=$(podman exec "$ctr" sh -c "sed -nE 's/^VmRSS:[[:space:]]+([0-9]+) kB/\1/p' /proc/$node_pid/status")
pid1=$(podman exec "$ctr" sh -c 'tr "\0" " " </proc/1/cmdline')
[[ $pid1 == /usr/bin/tini\ --\ node\ --min-semi-space-size=16\ dist/cli.js* ]] || fail "PID 1 is '$pid1', expected /usr/bin/tini -- node --min-semi-space-size=16 dist/cli.js ..."
status=$(podman exec "$ctr" sh -c "grep -E '^(Uid|Gid|CapEff|NoNewPrivs):' /proc/$node_pid/status | tr -s '\t ' ' '")
grep -q '^Uid: 1000 1000 1000 1000' <<<"$status" || fail "node does not run as uid 1000: $status"
grep -q '^CapEff: 0000000000000000' <<<"$status" || fail "node has capabilities: $status"
grep -q '^NoNewPrivs: 1' <<<"$status" || fail "no-new-privileges is not set: $status"
[ "$(podman exec "$ctr" id -u)" = 1000 ] || fail "podman exec runs as '$(podman exec "$ctr" id -u)', expected 1000"
say "PID 1: $pid1; node is PID $node_pid, uid 1000, no capabilities, no-new-privileges"

# Writes: none outside /tmp.
for path in /app/x /app/dist/x /etc/corsgate/x /etc/x /home/node/x /x; do
  if podman exec "$ctr" sh -c "echo x > $path" 2>/dev/null; then fail "could write $path: the root filesystem or the config mount is writable"; fi
done
podman exec "$ctr" sh -c 'echo x > /tmp/x && rm /tmp/x' || fail "cannot write /tmp (the chart mounts an emptyDir there)"
say "writes fail outside /tmp (/app, /etc/corsgate, /etc, /home/node, /); /tmp is writable"

# The image's own HEALTHCHECK, as podman runs it, and the probe's negative.
hc_out=$(podman healthcheck run "$ctr" 2>&1) || fail "the HEALTHCHECK is unhealthy with admin.port $admin set in the mounted file: $hc_out"
[ "$(podman inspect --format '{{ .State.Healthcheck.Status }}' "$ctr")" = healthy ] \
  || fail "podman records the container as '$(podman inspect --format '{{ .State.Healthcheck.Status }}' "$ctr")', expected healthy"
if podman exec -e CORSGATE_ADMIN_PORT=9 "$ctr" node dist/cli/health.js >/dev/null 2>&1; then
  fail "'corsgate health' says healthy with CORSGATE_ADMIN_PORT=9, where nothing listens: it is not probing the configured port"
fi
# What one probe costs: its time and peak RSS, measured from inside by a node parent.
probe_cost=$(podman exec "$ctr" node -e '
  const { spawnSync } = require("node:child_process")
  const hwm = "process.on(\"exit\", () => console.log(process.getBuiltinModule(\"fs\").readFileSync(\"/proc/self/status\", \"utf8\").match(/VmHWM:\\s+(\\d+)/)[1]))"
  const t = Date.now()
  const r = spawnSync("node", ["--import", "data:text/javascript," + encodeURIComponent(hwm), "dist/cli/health.js"], { encoding: "utf8" })
  if (r.status !== 0) { console.error(r.stderr); process.exit(1) }
  console.log(`${Date.now() - t} ms, peak RSS ${Math.round(Number(r.stdout.trim().split("\n").at(-1)) / 1024)} MiB`)
' 2>&1) || fail "timing the health probe: $probe_cost"
say "HEALTHCHECK healthy (corsgate health reads admin.port $admin from the mounted file); one probe: $probe_cost"

# Traffic from the host through the container to the upstream.
node .ci/image-checks.mjs "http://127.0.0.1:$port" "$allowed" "$denied" >"$work/checks.log" 2>&1 \
  || { cat "$work/checks.log" >&2; fail "HTTP/websocket checks through the container"; }
sed 's/^/   /' "$work/checks.log"
busy_rss_kb=$(podman exec "$ctr" sh -c "sed -nE 's/^VmRSS:[[:space:]]+([0-9]+) kB/\1/p' /proc/$node_pid/status")

# validate and check inside the image (the mounted file, via CORSGATE_CONFIG).
in_run() { podman run --rm "${secure[@]}" "$image" "$@" 2>"$work/in-run.err"; }
out=$(in_run validate) || fail "validate in the image: $out $(cat "$work/in-run.err")"
[[ $out == "/etc/corsgate/config.yaml: valid"* ]] || fail "validate said '$out'"
out=$(in_run check --origin "$allowed" --path /hello) || fail "check of an allowed origin in the image: $out $(cat "$work/in-run.err")"
[[ $out == ALLOWED* ]] || fail "check of $allowed said '$out'"
code=0; out=$(in_run check --origin "$denied") || code=$?
[ "$code" = 1 ] && [[ $out == DENIED* ]] || fail "check of $denied exited $code saying '$out', expected 1 and DENIED"
say "validate and check work in the image"

# SIGTERM with a request in flight: it completes, then the container exits 0 in the grace.
curl -sS --max-time 30 -o "$work/slow.body" -w '%{http_code}' -H "Origin: $allowed" "http://127.0.0.1:$port/slow" >"$work/slow.code" 2>"$work/slow.err" &
slow_pid=$!
wait_for 10 "the upstream to receive the slow request" grep -q 'slow received' "$upstream_log"
t0=$(now_ms)
podman kill --signal TERM "$ctr" >/dev/null 2>>"$work/run.log"
wait_for 10 "the gateway to log 'shutting down' after SIGTERM" sh -c "podman logs '$ctr' 2>&1 | grep -q '\"shutting down\"'"
running || fail "the container exited on SIGTERM while a request was in flight"
curl -fsS -X POST "http://127.0.0.1:$up_port/release" >/dev/null
wait "$slow_pid" || fail "the in-flight request failed during the drain: $(cat "$work/slow.err")"
[ "$(cat "$work/slow.code")" = 200 ] && [ "$(cat "$work/slow.body")" = "slow done" ] \
  || fail "the in-flight request got $(cat "$work/slow.code") '$(cat "$work/slow.body")', expected 200 'slow done'"
exit_code=$(timeout 15 podman wait "$ctr" 2>>"$work/run.log") || fail "the container did not exit within 15 s of the request completing"
stop_ms=$(( $(now_ms) - t0 ))
[ "$exit_code" = 0 ] || fail "the container exited $exit_code after SIGTERM, expected 0"
[ "$stop_ms" -lt 10000 ] || fail "the container took $stop_ms ms to exit, more than server.shutdownGraceMs (10000)"
podman rm "$ctr" >/dev/null 2>&1; ctr=''
say "SIGTERM: the in-flight request completed (200), exit 0, $stop_ms ms after the signal"

# Heap bound: the Helm chart's default memory limit and the NODE_OPTIONS it derives from it
# (helm from .ci/install-helm.sh), on this image: a leak must end in V8's heap error, not
# in the kernel's OOM kill (exit 137), which is what Node's own sizing leads to.
helm_bin=$(command -v helm || echo "${GOBIN:-${GOPATH:-$HOME/go}/bin}/helm")
[ -x "$helm_bin" ] || fail "helm is missing (bash .ci/install-helm.sh): the heap check reads the chart's values"
read -r mem_limit node_options < <("$helm_bin" template ci helm/corsgate -f test/fixtures/helm/policy.yaml | node --input-type=module -e '
  import { parseAllDocuments } from "yaml"
  let text = ""; for await (const c of process.stdin) text += c
  const deploy = parseAllDocuments(text).map((d) => d.toJS()).find((o) => o?.kind === "Deployment")
  const c = deploy.spec.template.spec.containers.find((x) => x.name === "corsgate")
  console.log(c.resources.limits.memory, c.env.find((e) => e.name === "NODE_OPTIONS").value)
') || fail "could not read the memory limit and NODE_OPTIONS from the chart"
[[ $mem_limit =~ ^([0-9]+)(Mi|Gi)$ ]] || fail "the chart's memory limit '$mem_limit' is not in Mi or Gi"
podman_mem="${BASH_REMATCH[1]}$([ "${BASH_REMATCH[2]}" = Mi ] && echo m || echo g)"
node_in() { # node_in [podman run options] -- node arguments
  local opts=(); while [ "$1" != -- ]; do opts+=("$1"); shift; done; shift
  podman run --rm --network none --memory "$podman_mem" --memory-swap "$podman_mem" "${opts[@]}" \
    --entrypoint node "$image" "$@" 2>"$work/podman.err"
}
heap_js='console.log(Math.round(require("v8").getHeapStatistics().heap_size_limit/1048576))'
heap_default=$(node_in -- -e "$heap_js") || fail "node under --memory $podman_mem: $(cat "$work/podman.err")"
heap_bound=$(node_in -e "NODE_OPTIONS=$node_options" -- -e "$heap_js") || fail "node with $node_options: $(cat "$work/podman.err")"
leak_code=0
node_in -e "NODE_OPTIONS=$node_options" -- --input-type=module -e '
  await import("/app/dist/server.js")
  const kept = []
  for (;;) kept.push(Array.from({ length: 1e5 }, (_, i) => ({ i, s: "x" + i })))
' >"$work/leak.log" 2>&1 || leak_code=$?
grep -q 'JavaScript heap out of memory' "$work/leak.log" "$work/podman.err" \
  || fail "a leak under the chart's $mem_limit limit with $node_options did not end in a heap error (exit $leak_code; 137 is the OOM kill)"
[ "$leak_code" != 137 ] || fail "a leak under $mem_limit with $node_options was OOM-killed (137) after the heap error"
say "heap: under the chart's $mem_limit limit Node alone allows $heap_default MiB; with its $node_options, $heap_bound MiB, and a leak ends in 'JavaScript heap out of memory' (exit $leak_code), not an OOM kill"

echo
echo "image figures: size ${size_mb} MB (base stand-in ${base_mb} MB); build ${build_s} s; start to /healthz ${start_ms} ms (node ${node_ms} ms); health probe ${probe_cost};" \
  "node RSS idle $(( idle_rss_kb / 1024 )) MiB, after the checks $(( busy_rss_kb / 1024 )) MiB;" \
  "heap limit under $mem_limit: ${heap_default} MiB by default, ${heap_bound} MiB with $node_options"
