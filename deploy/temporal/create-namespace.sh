#!/bin/sh
# Creates the namespace the workers use (a full server starts with none; the dev server makes `default`
# itself), once the frontend answers. Run by docker-compose.yml's `temporal-namespace`; idempotent.
set -eu
ns="${TEMPORAL_NAMESPACE:-default}"
tries=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "the Temporal frontend at $TEMPORAL_ADDRESS did not answer in 120 s" >&2; exit 1; }
  sleep 2
done
if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$ns" >/dev/null 2>&1; then
  echo "namespace $ns exists"
else
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" --retention "${TEMPORAL_RETENTION:-72h}" "$ns"
  echo "namespace $ns created"
fi
