#!/bin/bash
# tako-postgres-entrypoint: the entrypoint of tako's Debian-built PostgreSQL
# image. It honours the environment contract of the official postgres image,
# so tako does not care which of the two it runs:
#   POSTGRES_PASSWORD  superuser password (required; or POSTGRES_PASSWORD_FILE)
#   POSTGRES_USER      superuser name (default postgres; or POSTGRES_USER_FILE)
#   POSTGRES_DB        database created at initialisation (default: the user;
#                      or POSTGRES_DB_FILE)
#   POSTGRES_INITDB_ARGS  extra initdb arguments
#   PGDATA             data directory (default /var/lib/postgresql/data)
# "postgres [args]" (the default command, or args starting with "-")
# initialises an empty PGDATA and runs the server as the postgres OS user;
# any other command is run as it is.
set -Eeuo pipefail

# file_env VAR [DEFAULT] sets VAR from VAR or from the file named by VAR_FILE.
file_env() {
	local var="$1" def="${2:-}" fvar="${1}_FILE"
	if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then
		echo >&2 "tako-postgres: both $var and $fvar are set (but are exclusive)"
		exit 1
	fi
	local val="$def"
	if [ -n "${!var:-}" ]; then
		val="${!var}"
	elif [ -n "${!fvar:-}" ]; then
		val="$(<"${!fvar}")"
	fi
	export "$var"="$val"
	unset "$fvar"
}

if [ "${1:-}" = "" ] || [ "${1:0:1}" = "-" ]; then
	set -- postgres "$@"
fi
if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ "$(id -u)" = '0' ]; then
	# A fresh named volume belongs to root: hand it to postgres, then run
	# this script again as postgres.
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA"
	chmod 03775 /var/run/postgresql
	if [ "$(stat -c %U "$PGDATA")" != postgres ]; then
		chown -R postgres:postgres "$PGDATA"
	fi
	chown postgres:postgres /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	if [ -z "$POSTGRES_PASSWORD" ]; then
		echo >&2 "tako-postgres: the database is uninitialized and POSTGRES_PASSWORD is not set; set it (docker run -e POSTGRES_PASSWORD=...)"
		exit 1
	fi
	echo "tako-postgres: initializing $PGDATA"
	# Local (socket) connections inside the container are trusted, as in the
	# official image; every TCP connection needs the password.
	# shellcheck disable=SC2086
	initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" \
		--pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host=scram-sha-256 \
		--encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-}
	printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

	# Create the database on a server only the socket reaches, so nothing
	# outside sees a half-initialised database.
	pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses='' -p 5432" start
	if [ "$POSTGRES_DB" != postgres ]; then
		psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username="$POSTGRES_USER" --dbname=postgres \
			--set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
	pg_ctl --pgdata="$PGDATA" --wait --silent -m fast stop
	echo "tako-postgres: initialization complete"
fi
unset POSTGRES_PASSWORD

shift
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
