#!/usr/bin/env bash
# A real Temporal cluster on this machine, natively (no container engine here): the full Temporal server
# (go.temporal.io/server, the version the Temporal CLI of scripts/ensure-temporal.sh is built on) on a
# throwaway PostgreSQL cluster, everything on 127.0.0.1 and on free ports.
#
#   scripts/cluster.sh start DIR   initdb a PostgreSQL cluster in DIR/pg, create the temporal and
#                                  temporal_visibility databases with temporal-sql-tool's schemas, write
#                                  DIR/temporal.yaml, start the server, create the `default` namespace;
#                                  prints TEMPORAL_ADDRESS=127.0.0.1:<port> on stdout when it answers
#   scripts/cluster.sh stop DIR    stop the server and PostgreSQL started in DIR
#   scripts/cluster.sh build       only build the server and temporal-sql-tool into .tools/
#
# PostgreSQL and the server are processes of their own (pids in DIR/*.pid, logs in DIR/*.log); DIR is
# removed by nobody but you. Requires Debian's postgresql (installed with apt-get when missing and root)
# and Go (to build the server once, from the Go module proxy, at low priority: `nice -n 19`).
set -euo pipefail

SERVER_VERSION="${TEMPORAL_SERVER_VERSION:-v1.29.1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools/temporal-server-$SERVER_VERSION"
say() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf '*** cluster: %s ***\n' "$*" >&2; exit 1; }

go_bin() {
  local go
  go="$(command -v go || true)"
  [ -n "$go" ] || { [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go; }
  [ -n "$go" ] || die "Go is not installed: it is needed once to build the Temporal server $SERVER_VERSION"
  echo "$go"
}

# The server (`server`) and its SQL schema tool (`sql`, upstream's temporal-sql-tool) from one module version.
build() {
  if [ -x "$TOOLS/server" ] && [ -x "$TOOLS/sql" ]; then return 0; fi
  local go start
  go="$(go_bin)"
  mkdir -p "$TOOLS"
  say "building go.temporal.io/server $SERVER_VERSION (server, temporal-sql-tool) into $TOOLS (first run only, minutes)..."
  start=$(date +%s)
  GOBIN="$TOOLS" GOFLAGS="${GOFLAGS:--buildvcs=false}" nice -n 19 "$go" install \
    "go.temporal.io/server/cmd/server@$SERVER_VERSION" "go.temporal.io/server/cmd/tools/sql@$SERVER_VERSION" >&2 ||
    die "go install of go.temporal.io/server@$SERVER_VERSION failed (see above)"
  say "built in $(( $(date +%s) - start ))s"
}

# The SQL schemas ship in the server's module: the same version as the binaries.
schema_dir() {
  local go mod
  go="$(go_bin)"
  mod="$("$go" env GOMODCACHE)/go.temporal.io/server@$SERVER_VERSION"
  [ -d "$mod/schema/postgresql/v12" ] || "$go" mod download "go.temporal.io/server@$SERVER_VERSION" >&2
  [ -d "$mod/schema/postgresql/v12" ] || die "no PostgreSQL schema in $mod"
  echo "$mod/schema/postgresql/v12"
}

pg_bin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing Debian's postgresql (apt-get)..."
      { apt-get install -y postgresql >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y postgresql >/dev/null 2>&1; }; } || true
      d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
    fi
  fi
  [ -n "$d" ] && [ -x "$d/initdb" ] || die "PostgreSQL is missing and could not be installed (apt-get install postgresql as root): the cluster cannot start"
  echo "$d"
}

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# A free loopback port below 32768. The server stores each service's membership port in PostgreSQL's
# cluster_membership.rpc_port, a SMALLINT: a port the kernel hands out (32768 and up, Linux's ephemeral
# range) makes the server die at start with "value ... is out of range for type smallint". Random
# ports of 20000..32767, the first one that binds.
free_low_port() {
  node -e '
    const net = require("net");
    const tryPort = (n) => {
      if (n === 0) { console.error("no free port below 32768"); process.exit(1); }
      const p = 20000 + Math.floor(Math.random() * 12768);
      const s = net.createServer();
      s.once("error", () => tryPort(n - 1));
      s.listen(p, "127.0.0.1", () => { console.log(p); s.close(); });
    };
    tryPort(200);'
}

# PostgreSQL refuses to run as root: as root, its files belong to the `postgres` user and it runs as that.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_for() { # seconds, description, command...  (gives up at once when the server of $SERVER_PID died)
  local secs="$1" what="$2"; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    if [ -n "${SERVER_PID:-}" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
      say "the Temporal server exited while waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

start() {
  local dir="$1"
  build
  local pgbin schema
  pgbin="$(pg_bin)"
  schema="$(schema_dir)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  [ ! -e "$dir/pg" ] || die "$dir/pg exists: stop and remove the old cluster first"

  local pgport; pgport="$(free_port)"
  mkdir -p "$dir/pg" "$dir/pgsock"
  # As root, PostgreSQL runs as `postgres`, which must get through DIR to its own folders: a DIR made by
  # mkdtemp is 0700 (the test harness's is), so open DIR for traversal only (no listing).
  if [ "$(id -u)" = 0 ]; then
    chmod o+x "$dir"
    chown postgres:postgres "$dir/pg" "$dir/pgsock"
  fi
  as_pg "$pgbin/initdb" -D "$dir/pg" -U postgres -A trust >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$dir/initdb.log")"
  as_pg "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg/postgres.log" -w -t 60 \
    -o "-p $pgport -h 127.0.0.1 -k $dir/pgsock -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >&2 ||
    die "PostgreSQL did not start: $(tail -3 "$dir/pg/postgres.log" 2>/dev/null)"
  echo "$pgport" >"$dir/pg.port"
  as_pg "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE USER temporal WITH PASSWORD 'temporal' CREATEDB" >&2

  # The schemas, by temporal-sql-tool: create each database, set up version 0, update to the newest.
  local db sub
  for db in temporal temporal_visibility; do
    sub=temporal; [ "$db" = temporal ] || sub=visibility
    local sql=("$TOOLS/sql" --plugin postgres12 --ep 127.0.0.1 -p "$pgport" -u temporal --pw temporal --db "$db")
    "${sql[@]}" create-database >>"$dir/schema.log" 2>&1 || die "create-database $db failed: $(tail -3 "$dir/schema.log")"
    "${sql[@]}" setup-schema -v 0.0 >>"$dir/schema.log" 2>&1 || die "setup-schema $db failed: $(tail -3 "$dir/schema.log")"
    "${sql[@]}" update-schema -d "$schema/$sub/versioned" >>"$dir/schema.log" 2>&1 ||
      die "update-schema $db failed: $(tail -3 "$dir/schema.log")"
  done

  local fe hi ma wo fem him mam wom http
  fe="$(free_low_port)"; hi="$(free_low_port)"; ma="$(free_low_port)"; wo="$(free_low_port)"
  fem="$(free_low_port)"; him="$(free_low_port)"; mam="$(free_low_port)"; wom="$(free_low_port)"
  http="$(free_low_port)"
  [ "$(printf '%s\n' "$fe" "$hi" "$ma" "$wo" "$fem" "$him" "$mam" "$wom" "$http" | sort -u | wc -l)" = 9 ] ||
    die "two services drew the same port; start again"
  mkdir -p "$dir/config/dynamicconfig"
  # Short sticky and matching timeouts would hide nothing here; the defaults are the server's.
  cat >"$dir/config/dynamicconfig/cluster.yaml" <<YAML
frontend.enableUpdateWorkflowExecution:
  - value: true
frontend.enableUpdateWorkflowExecutionAsyncAccepted:
  - value: true
system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
YAML
  cat >"$dir/config/development.yaml" <<YAML
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: "postgres12"
        databaseName: "temporal"
        connectAddr: "127.0.0.1:$pgport"
        connectProtocol: "tcp"
        user: "temporal"
        password: "temporal"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: "1h"
    postgres-visibility:
      sql:
        pluginName: "postgres12"
        databaseName: "temporal_visibility"
        connectAddr: "127.0.0.1:$pgport"
        connectProtocol: "tcp"
        user: "temporal"
        password: "temporal"
        maxConns: 4
        maxIdleConns: 4
        maxConnLifetime: "1h"
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
services:
  frontend:
    rpc: { grpcPort: $fe, membershipPort: $fem, bindOnLocalHost: true, httpPort: $http }
  matching:
    rpc: { grpcPort: $ma, membershipPort: $mam, bindOnLocalHost: true }
  history:
    rpc: { grpcPort: $hi, membershipPort: $him, bindOnLocalHost: true }
  worker:
    rpc: { grpcPort: $wo, membershipPort: $wom, bindOnLocalHost: true }
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:$fe"
dcRedirectionPolicy:
  policy: "noop"
dynamicConfigClient:
  filepath: "$dir/config/dynamicconfig/cluster.yaml"
  pollInterval: "10s"
YAML
  # The marker in the command line lets tests find (and kill) this server by its folder.
  ( cd "$dir" && exec "$TOOLS/server" --root "$dir" --config config --env development --allow-no-auth start ) \
    >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  echo "$SERVER_PID" >"$dir/server.pid"
  local address="127.0.0.1:$fe"
  echo "$address" >"$dir/address"
  local cli; cli="$("$ROOT/scripts/ensure-temporal.sh")"
  wait_for 180 "the frontend" "$cli" operator cluster health --address "$address" ||
    die "the Temporal server did not answer on $address within 180 s: $(tail -5 "$dir/server.log")"
  # A real server starts without namespaces (the dev server makes `default` itself).
  wait_for 120 "namespace default" "$cli" operator namespace create --address "$address" --retention 24h default ||
    "$cli" operator namespace describe --address "$address" default >/dev/null 2>&1 ||
    die "could not create namespace default: $(tail -5 "$dir/server.log")"
  wait_for 60 "namespace default" "$cli" workflow list --address "$address" --namespace default --limit 1 ||
    die "namespace default does not answer"
  say "Temporal server $SERVER_VERSION on PostgreSQL (port $pgport) at $address (logs: $dir/server.log)"
  echo "TEMPORAL_ADDRESS=$address"
}

stop() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  if [ -f "$dir/server.pid" ]; then
    local pid; pid="$(cat "$dir/server.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/server.pid"
  fi
  if [ -d "$dir/pg" ]; then
    local pgbin; pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
    [ -z "$pgbin" ] || as_pg "$pgbin/pg_ctl" -D "$dir/pg" -m immediate -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  build) build ;;
  start) [ -n "${2:-}" ] || die "usage: scripts/cluster.sh start DIR"; start "$2" ;;
  stop) [ -n "${2:-}" ] || die "usage: scripts/cluster.sh stop DIR"; stop "$2" ;;
  *) die "usage: scripts/cluster.sh build | start DIR | stop DIR" ;;
esac
