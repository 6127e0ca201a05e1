# corsgate container image (docs/deploying-image.md).
#
#   docker build -t corsgate:0.1.0 .
#   docker run --rm -p 8080:8080 -v "$PWD/corsgate.yaml:/etc/corsgate/config.yaml:ro" corsgate:0.1.0
#
# No `# syntax=` line: nothing here needs a newer Dockerfile frontend than the builder's
# own, and with one BuildKit first pulls the docker/dockerfile image from Docker Hub, which
# fails where no registry is reachable. podman and buildah build it too.
#
# The base is pinned to a Node 24 LTS release on Debian 13 slim, at or above the first
# release with the fix for CVE-2026-58044 (24.18.1, src/node-support.ts); bump it on
# purpose, never float to `latest`. .ci/lint-dockerfile.sh and test/dockerfile.test.ts hold
# this file to the project's image rules; .ci/image.sh builds it and runs the result.
ARG NODE_IMAGE=node:24.21.0-trixie-slim

# ---- build: every dependency, compile TypeScript, then drop the dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The lockfile alone decides what is installed. No install script is needed to compile
# (tsc is plain JavaScript) or to run, so none runs.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The type declarations are for library users of the npm package, not for the image.
RUN npm run build \
 && find dist -name '*.d.ts' -delete \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime: node, tini, the compiled code and production dependencies only ----
FROM ${NODE_IMAGE} AS runtime
# tini is PID 1: it forwards SIGTERM to node (which then drains, SPEC "CLI") and reaps
# zombies, so `docker run --init` is not needed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
# The image's own config is the package default (development origins, upstream
# 127.0.0.1:8000). Mount yours over /etc/corsgate/config.yaml, or use the CORSGATE_*
# environment overrides. The Helm chart mounts its ConfigMap here.
COPY config/default.yaml /etc/corsgate/config.yaml
# Every command (start, health, validate, check, origins) reads this file unless given
# --config: to use another, set CORSGATE_CONFIG, and the HEALTHCHECK follows it.
ENV CORSGATE_CONFIG=/etc/corsgate/config.yaml
# Everything above is owned by root and read-only to the process: it runs as the
# unprivileged `node` user of the base image, by number, so Kubernetes' runAsNonRoot can
# verify it without a runAsUser; it writes nothing.
USER 1000:1000
EXPOSE 8080 9090
# The probe is `corsgate health` (src/cli/health.ts, run directly so it loads none of the
# server's modules): it loads the config as `start` does (the file, then CORSGATE_*
# overrides) and asks /healthz at the admin host and port that config sets; exit 0
# healthy, 1 not. Loading and checking the config takes it about 0.4 s of CPU, which on a
# CPU-starved host can stretch to seconds: hence a 10 s timeout, not 3 s.
# Memory: Node sizes its heap from the container's limit and may grow it to about the
# whole limit, so a leak would end in an OOM kill. Give it
# NODE_OPTIONS=--max-old-space-size=<MiB> at about three quarters of the limit (the Helm
# chart derives it from resources.limits.memory): a leak then ends in a clear
# heap-out-of-memory error instead.
HEALTHCHECK --interval=15s --timeout=10s --start-period=10s --retries=3 \
  CMD ["node", "dist/cli/health.js"]
# --min-semi-space-size: the young generation's floor (MiB). With it, corsgate gives back the
# memory that starting took once it listens (src/startup-garbage.ts) without then paying for
# a shrunken young generation under load.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--min-semi-space-size=16", "dist/cli.js"]
CMD ["start"]
