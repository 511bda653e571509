#!/bin/bash
# The streaming replica: on its first start (an empty data folder) it clones the primary with
# pg_basebackup through the slot primary-init.sh made (--write-recovery-conf writes standby.signal
# and primary_conninfo), then hands over to the official image's entrypoint, which runs postgres as
# a hot standby. Later starts find the data folder and only stream.
set -euo pipefail
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD in deploy/compose.env}"
PRIMARY_HOST="${PRIMARY_HOST:-postgres}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  export PGPASSWORD="$REPLICATION_PASSWORD"
  until gosu postgres pg_basebackup --host="$PRIMARY_HOST" --username=replicator --pgdata="$PGDATA" \
    --wal-method=stream --slot=replica_1 --write-recovery-conf --checkpoint=fast; do
    echo "replica: no base backup from $PRIMARY_HOST yet; again in 2 s" >&2
    find "$PGDATA" -mindepth 1 -delete
    sleep 2
  done
  unset PGPASSWORD
  echo "replica: cloned $PRIMARY_HOST; starting as a hot standby" >&2
fi

exec docker-entrypoint.sh postgres -c hot_standby=on
