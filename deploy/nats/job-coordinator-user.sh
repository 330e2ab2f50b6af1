#!/bin/sh
# Prints a NATS user entry (for the PATCHCERT account's `users` list in patchcert-auth.conf) that
# confines a coordinator to one job: it may publish that job's units, progress and cancellation,
# read and write that job's records, consume that job's results, and upload model files.
#
#   deploy/nats/job-coordinator-user.sh JOB_ID [USER] >> users.conf
#
# Streams, buckets and the shared worker consumer must exist already (create them once with the
# general `coordinator` user, e.g. by its first job), with the same --ack-wait and --replicas.
# JetStream cannot confine a purge to one subject by permissions: this user may purge the two job
# streams and the job bucket's stream (it only ever purges its own job's subjects), and its direct gets on the work stream
# (which list a resumed job's queued units) could read other jobs' queued unit ids. The password comes from the server's
# environment variable PATCHCERT_JOB_COORDINATOR_PASSWORD (or edit the entry to use an nkey).
set -eu
job=${1:?usage: job-coordinator-user.sh JOB_ID [USER]}
user=${2:-coordinator-$job}
case "$job" in
  *[!A-Za-z0-9_-]*|"") echo "invalid job id: $job" >&2; exit 2 ;;
esac
if [ ${#job} -gt 64 ]; then echo "job id longer than 64 characters" >&2; exit 2; fi
cat <<CONF
{ user: "$user", password: \$PATCHCERT_JOB_COORDINATOR_PASSWORD, permissions: {
    publish: { allow: [
      "\$JS.API.INFO"
      "\$JS.API.STREAM.INFO.PATCHCERT_WORK", "\$JS.API.STREAM.PURGE.PATCHCERT_WORK"
      "\$JS.API.DIRECT.GET.PATCHCERT_WORK"
      "\$JS.API.STREAM.INFO.PATCHCERT_RESULTS", "\$JS.API.STREAM.PURGE.PATCHCERT_RESULTS"
      "\$JS.API.CONSUMER.INFO.PATCHCERT_WORK.patchcert-workers"
      "\$JS.API.CONSUMER.INFO.PATCHCERT_RESULTS.patchcert-coord-$job"
      "\$JS.API.CONSUMER.CREATE.PATCHCERT_RESULTS.patchcert-coord-$job"
      "\$JS.API.CONSUMER.CREATE.PATCHCERT_RESULTS.patchcert-coord-$job.>"
      "\$JS.API.CONSUMER.DURABLE.CREATE.PATCHCERT_RESULTS.patchcert-coord-$job"
      "\$JS.API.CONSUMER.DELETE.PATCHCERT_RESULTS.patchcert-coord-$job"
      "\$JS.API.CONSUMER.MSG.NEXT.PATCHCERT_RESULTS.patchcert-coord-$job"
      "\$JS.ACK.PATCHCERT_RESULTS.patchcert-coord-$job.>"
      "patchcert.work.$job", "patchcert.progress.$job", "patchcert.control.$job"
      "\$JS.API.STREAM.INFO.KV_PATCHCERT_JOBS", "\$JS.API.STREAM.MSG.GET.KV_PATCHCERT_JOBS"
      "\$JS.API.STREAM.PURGE.KV_PATCHCERT_JOBS"
      "\$JS.API.DIRECT.GET.KV_PATCHCERT_JOBS.\$KV.PATCHCERT_JOBS.$job.>"
      "\$KV.PATCHCERT_JOBS.$job.>"
      "\$JS.API.STREAM.INFO.OBJ_PATCHCERT_MODELS", "\$JS.API.STREAM.MSG.GET.OBJ_PATCHCERT_MODELS"
      "\$JS.API.STREAM.PURGE.OBJ_PATCHCERT_MODELS", "\$JS.API.DIRECT.GET.OBJ_PATCHCERT_MODELS.>"
      "\$O.PATCHCERT_MODELS.>"
    ] }
    subscribe: { allow: [ "_INBOX.coordinator.$job.>", "patchcert.heartbeat", "patchcert.control.$job" ] }
} }
CONF
