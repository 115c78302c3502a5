#!/usr/bin/env bash
# Property-based testing of /api/v1 from its OpenAPI document (src/http/api.openapi.yaml):
# starts the real `insurebot serve` in sandbox mode with an API token on a fresh database and
# runs schemathesis against GET /api/v1/openapi.json. Every operation gets generated valid and
# invalid input; a 5xx, an undocumented status, or a body, header or content type that does not
# match the document fails the run.
#
#   tests/schemathesis.sh BINARY [DATABASE_URL]
#
# BINARY is a built insurebot (e.g. target/debug/insurebot). DATABASE_URL defaults to a SQLite
# file in a temp dir; a postgres:// admin URL makes a database of its own, dropped at the end.
# SCHEMATHESIS (default: schemathesis on PATH) names the tool; .ci/run installs a pinned one.
# ST_MAX_EXAMPLES (default 40) bounds the examples per operation and ST_MAX_TIME (default
# 90 s) the whole run.
set -euo pipefail

binary=$(realpath "${1:?usage: tests/schemathesis.sh BINARY [DATABASE_URL]}")
admin_url="${2:-}"
schemathesis="${SCHEMATHESIS:-schemathesis}"
root="$(cd "$(dirname "$0")/.." && pwd)"

work=$(mktemp -d)
server_pid=""
pg_db=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_db" ]; then
    psql "$admin_url" -qc "drop database if exists \"$pg_db\" with (force)" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

case "$admin_url" in
  "")
    database_url="sqlite://$work/schemathesis.db?mode=rwc"
    ;;
  postgres://*)
    # Named like the integration tests' databases, so CI's clean-up drops a leftover too.
    pg_db="insurebot_test_schemathesis_$$"
    psql "$admin_url" -qc "create database \"$pg_db\""
    database_url="${admin_url%/*}/$pg_db"
    ;;
  *)
    echo "tests/schemathesis.sh: DATABASE_URL must be empty or postgres://…" >&2
    exit 2
    ;;
esac

# A free port: bind 0, read it back, release it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token="schemathesis-token-$(date +%s%N)"
base="http://127.0.0.1:$port"

# Sandbox mode (no WhatsApp token): replies go to the built-in fake Cloud API. The wrong-token
# allowance is raised because schemathesis' ignored_auth check sends calls without the token
# on purpose; the throttle itself is tested in tests/api/hardening_edge.rs.
(
  cd "$root"
  exec env -i PATH="$PATH" HOME="$HOME" \
    INSUREBOT_DATABASE_URL="$database_url" \
    INSUREBOT_LISTEN="127.0.0.1:$port" \
    INSUREBOT_API_TOKEN="$token" \
    INSUREBOT_API_MAX_FAILURES_PER_MINUTE=100000 \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$binary" serve
) >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 120); do
  if curl -fsS "$base/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "insurebot serve exited before answering:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.5
done
curl -fsS "$base/healthz" >/dev/null

# positive_data_acceptance is left out: the document gives the shape of a request, and many
# shape-valid requests break a rule only the server's data can decide (a template that is not
# in the registry, a policy that does not exist, a phone number with 7 digits), which the API
# rightly answers 422. Every other check runs.
status=0
# From the temp dir: schemathesis keeps a cache (.schemathesis/) in its working directory.
cd "$work"
"$schemathesis" run "$base/api/v1/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --phases examples,coverage,fuzzing \
  --max-examples "${ST_MAX_EXAMPLES:-40}" \
  --max-time "${ST_MAX_TIME:-90}" \
  --workers 1 \
  --request-timeout 10 \
  --seed 23 \
  --no-color \
  || status=$?

if [ "$status" -ne 0 ]; then
  echo "--- the server's log (last 50 lines)" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
