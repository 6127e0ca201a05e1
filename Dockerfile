# syntax=docker/dockerfile:1
# corsgate container image (README "Deploying").
#
#   docker build -t corsgate:0.1.0 .
#   docker run --rm -p 8080:8080 -v "$PWD/corsgate.yaml:/etc/corsgate/config.yaml:ro" corsgate:0.1.0
#
# The base is pinned to a Node 24 LTS release on Debian 13 slim, at or above the first
# release with the fix for CVE-2026-58044 (24.18.1, src/node-support.ts); bump it on
# purpose, never float to `latest`. .ci/lint-dockerfile.sh and test/dockerfile.test.ts hold this
# file to the rules of issue 5; .ci/docker-smoke.sh repeats the build steps without Docker.
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
RUN npm run build \
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
# Everything above is owned by root and read-only to the process: it runs as the
# unprivileged `node` user (uid 1000) of the base image and writes nothing.
USER node
EXPOSE 8080 9090
# The admin server answers /healthz on 127.0.0.1:9090 by default; slim has no curl, so
# node's own fetch does the probe.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.CORSGATE_ADMIN_PORT||9090)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/cli.js"]
CMD ["start", "--config", "/etc/corsgate/config.yaml"]
