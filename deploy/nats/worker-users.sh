#!/bin/sh
# Prints one NATS user entry per worker id, for the PATCHCERT account's `users` list in
# patchcert-auth.conf (where it says "per-worker users ... go here"):
#
#   deploy/nats/worker-users.sh gpu-node-1 gpu-node-2 ... > workers.conf
#
# User "worker-<id>" may do what the shared `worker` user may, except that it publishes results
# only on its own subject patchcert.results.*.<id> and receives replies only on its own inbox
# _INBOX.worker.<id>.> (what `patchcert worker --worker-id <id>` uses). So one worker can neither
# vote as another nor read the units, records or models delivered to another. Start the worker with
#   patchcert worker --worker-id <id> --nats-user worker-<id> --nats-password ...
# Its password comes from the server's environment variable PATCHCERT_WORKER_<ID>_PASSWORD (the id
# upper-cased, - as _), e.g. PATCHCERT_WORKER_GPU_NODE_1_PASSWORD; or edit the entry to use an nkey.
set -eu
if [ $# -eq 0 ]; then echo "usage: worker-users.sh WORKER_ID..." >&2; exit 2; fi
for id in "$@"; do
  case "$id" in
    *[!A-Za-z0-9_-]*|"") echo "invalid worker id: $id (letters, digits, _ and - only)" >&2; exit 2 ;;
  esac
  if [ ${#id} -gt 64 ]; then echo "worker id longer than 64 characters: $id" >&2; exit 2; fi
  var=PATCHCERT_WORKER_$(printf '%s' "$id" | tr 'a-z-' 'A-Z_')_PASSWORD
  cat <<CONF
{ user: "worker-$id", password: \$$var, permissions: {
    publish: { allow: [
      "\$JS.API.INFO"
      "\$JS.API.CONSUMER.INFO.PATCHCERT_WORK.patchcert-workers"
      "\$JS.API.CONSUMER.MSG.NEXT.PATCHCERT_WORK.patchcert-workers"
      "\$JS.ACK.PATCHCERT_WORK.patchcert-workers.>"
      "patchcert.results.*.$id"
      "patchcert.heartbeat"
      "\$JS.API.STREAM.INFO.KV_PATCHCERT_JOBS", "\$JS.API.STREAM.MSG.GET.KV_PATCHCERT_JOBS"
      "\$JS.API.DIRECT.GET.KV_PATCHCERT_JOBS.>"
      "\$KV.PATCHCERT_JOBS.*.attempts.>"
      "\$JS.API.STREAM.INFO.OBJ_PATCHCERT_MODELS", "\$JS.API.STREAM.MSG.GET.OBJ_PATCHCERT_MODELS"
      "\$JS.API.DIRECT.GET.OBJ_PATCHCERT_MODELS.>"
      "\$JS.API.STREAM.NAMES"
      "\$JS.API.CONSUMER.CREATE.OBJ_PATCHCERT_MODELS", "\$JS.API.CONSUMER.CREATE.OBJ_PATCHCERT_MODELS.>"
      "\$JS.API.CONSUMER.DELETE.OBJ_PATCHCERT_MODELS.>"
      "\$JS.FC.OBJ_PATCHCERT_MODELS.>"
    ] }
    subscribe: { allow: [ "_INBOX.worker.$id.>", "patchcert.control.*" ] }
} }
CONF
done
