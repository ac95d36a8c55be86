-- Least privilege for the service's own role (simple_twitter_app): read and write rows, nothing
-- else. No DDL, no DELETE or TRUNCATE, no ownership: a compromised service cannot drop or empty
-- tables. Migrations run as the owner (MIGRATE_DATABASE_URL); run this file as the owner too.
-- The role itself (LOGIN, its password) is created by whoever provisions the database: for
-- compose, sql/roles/10-app-role.sh (the postgres image runs both files, in name order).
GRANT USAGE ON SCHEMA public TO simple_twitter_app;
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO simple_twitter_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO simple_twitter_app;
-- Tables and sequences that later migrations create (as this owner) get the same rights.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO simple_twitter_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO simple_twitter_app;
