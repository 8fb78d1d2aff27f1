#!/bin/sh
# Creates Temporal's two PostgreSQL databases and brings their schemas to the newest version of this
# admin-tools release (docker-compose.yml's `temporal-schema`, run before the server starts). Every step
# is idempotent: an existing database is kept, `setup-schema -v 0.0` leaves a newer schema alone, and
# `update-schema` applies only the missing versions, so `docker compose up` runs it at every start.
# The same steps as scripts/cluster.sh, which `make test-cluster` runs on this server version natively.
# Connection: SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD (temporal-sql-tool reads them).
set -eu
for db in temporal temporal_visibility; do
  case "$db" in
    temporal) schema=postgresql/v12/temporal ;;
    *) schema=postgresql/v12/visibility ;;
  esac
  echo "schema of $db: $schema"
  temporal-sql-tool --db "$db" create-database
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema --schema-name "$schema"
done
echo 'Temporal schemas are up to date'
