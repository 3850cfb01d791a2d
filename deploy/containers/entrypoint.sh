#!/bin/sh
# The image's entrypoint: before gunicorn, apply the migrations (flask db upgrade takes a
# named lock, so replicas may start together), waiting up to UPLOADSVC_MIGRATE_WAIT seconds
# for a database that is still starting; then exec the command, so that it is PID 1 and
# receives SIGTERM itself. Any other command (flask cleanup, uploadsvc-upload) runs as is.
set -eu

if [ "${1:-}" = "gunicorn" ] && [ "${UPLOADSVC_MIGRATE:-1}" != "0" ]; then
    deadline=$(( $(date +%s) + ${UPLOADSVC_MIGRATE_WAIT:-60} ))
    until flask --app uploadsvc db upgrade; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "entrypoint: the migrations failed; giving up" >&2
            exit 1
        fi
        echo "entrypoint: the migrations failed; trying again in 2 s" >&2
        sleep 2
    done
fi
exec "$@"
