#!/bin/sh
# The replica profile's entrypoint: on first start, copy the primary with pg_basebackup (-R: it
# starts as a streaming standby of it), then run PostgreSQL as the image does. Needs the primary's
# pg_hba entry for replication (sql/roles/20-replication.sh).
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h postgres -U simple_twitter; do sleep 1; done
  pg_basebackup -h postgres -U simple_twitter -D "$PGDATA" -R -X stream -c fast
  chown -R postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
fi
exec docker-entrypoint.sh postgres
