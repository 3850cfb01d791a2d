#!/bin/sh
# First start on an empty /var/lib/mysql: create the system tables, then the database and its
# user from MARIADB_DATABASE, MARIADB_USER and MARIADB_PASSWORD (utf8mb4, byte-exact
# collation, as docs/deployment.md creates it). root logs in through the unix socket only.
set -eu

if [ "${1:-}" = "mariadbd" ]; then
    init=""
    if [ ! -d /var/lib/mysql/mysql ]; then
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
        init=/run/mysqld/init.sql
        : > "$init"
        if [ -n "${MARIADB_DATABASE:-}" ]; then
            echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`" \
                 "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;" >> "$init"
        fi
        if [ -n "${MARIADB_USER:-}" ]; then
            echo "CREATE USER IF NOT EXISTS '$MARIADB_USER'@'%'" \
                 "IDENTIFIED BY '${MARIADB_PASSWORD:?MARIADB_PASSWORD is required}';" >> "$init"
            echo "GRANT ALL ON \`${MARIADB_DATABASE:-%}\`.* TO '$MARIADB_USER'@'%';" >> "$init"
        fi
        chown mysql "$init"
    fi
    shift
    # --init-file runs once, on this start; the file goes with the container's /run.
    exec mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=0.0.0.0 \
        --skip-name-resolve ${init:+--init-file="$init"} "$@"
fi
exec "$@"
