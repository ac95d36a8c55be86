#!/bin/sh
# Compose's replica profile copies the primary with pg_basebackup as the owner: allow replication
# connections for it (password-checked, like every other connection of the image).
set -eu
echo "host replication $POSTGRES_USER all scram-sha-256" >> "$PGDATA/pg_hba.conf"
