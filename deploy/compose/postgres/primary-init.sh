#!/bin/bash
# Run once by the official postgres image's entrypoint when it initialises the primary's data folder
# (/docker-entrypoint-initdb.d): the replication role and the slot the replica streams through, and
# the pg_hba line that lets it in with a password. The slot keeps the WAL the replica has not received,
# so a replica that was away catches up instead of needing a new base backup.
set -euo pipefail
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD in deploy/compose.env}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SELECT pg_create_physical_replication_slot('replica_1');
SQL

echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
