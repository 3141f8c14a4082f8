#!/bin/sh
# PostgreSQL init script of docker-compose.test.yml (runs once, on an empty data directory):
# creates the deployment's role and database from the one line of deploy/secrets/pgpass, so the
# password lives in one file. The `postgres` superuser (password `postgres`) stays for the test
# ladder, which creates a database per test.
set -eu

line=$(grep -v '^[[:space:]]*#' /run/bigskies/pgpass | grep -m 1 .)
# host:port:database:user:password (no escaped ':' in these test values)
database=$(printf '%s' "$line" | cut -d: -f3)
user=$(printf '%s' "$line" | cut -d: -f4)
password=$(printf '%s' "$line" | cut -d: -f5-)

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v db="$database" -v role="$user" -v pw="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"role";
SQL
