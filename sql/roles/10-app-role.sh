#!/bin/sh
# Compose mounts sql/roles at /docker-entrypoint-initdb.d: when the postgres image first
# initialises its volume it runs the files here in name order, as the owner: this script creates
# the service's least-privileged login role, then app_grants.sql gives it its rights.
# Migrations run later, as the owner, and their tables get the same rights by default.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$APP_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE simple_twitter_app LOGIN PASSWORD :'pw';
-- Every session of the role starts with the service's DB_STATEMENT_TIMEOUT (4 s by default), so
-- that through the pooler profile, whose server connections log in as this role and keep no
-- session setting of the service's, each statement can go alone (USE_POOLER_BARE_STATEMENTS).
ALTER ROLE simple_twitter_app SET statement_timeout = '4s';
-- And the plan mode the service's direct connections set for themselves (USE_GENERIC_PLANS): a
-- search's prepared statement kept by the pooler runs its generic plan, not one planned anew.
ALTER ROLE simple_twitter_app SET plan_cache_mode = 'force_generic_plan';
SQL
