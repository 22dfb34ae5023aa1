#!/usr/bin/env bash
# kafka-init of docker-compose.secure.yml: as the super user lfr-admin over SASL_SSL,
# creates the topics (configs of services/common/topics.py), registers each service's SCRAM user
# with its password from /run/secrets/kafka-password-<service>, then applies the per-service ACLs
# (deploy/kafka/acls.sh, generated from services/common/acls.py). Idempotent.
set -euo pipefail
umask 077
S=/run/secrets
B=kafka:9092
cat > /tmp/admin.properties <<EOP
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="lfr-admin" password="$(cat "$S/kafka-admin-password")";
ssl.truststore.type=PEM
ssl.truststore.location=$S/kafka-ca.crt
EOP
mk() { /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$B" --command-config /tmp/admin.properties --create --if-not-exists --replication-factor 1 "$@"; }
eph="--config message.timestamp.type=LogAppendTime --config file.delete.delay.ms=1000 --config retention.bytes=-1"
# shellcheck disable=SC2086
mk --topic lfr.frames.v1  --partitions "${LFR_FRAMES_PARTITIONS:-12}" --config retention.ms=60000 --config segment.ms=10000 --config max.message.bytes=4194304 $eph
# shellcheck disable=SC2086
mk --topic lfr.faces.v1   --partitions "${LFR_FACES_PARTITIONS:-12}" --config retention.ms=60000 --config segment.ms=10000 --config max.message.bytes=2097152 $eph
mk --topic lfr.matches.v1 --partitions 3 --config retention.ms=86400000 --config segment.ms=3600000
mk --topic lfr.alerts.v1  --partitions 3 --config retention.ms=86400000 --config segment.ms=3600000
mk --topic lfr.dlq.v1     --partitions 1 --config retention.ms=604800000 --config segment.ms=86400000 --config max.message.bytes=4194304
mk --topic lfr.audit.v1   --partitions 1 --config retention.ms=-1 --config retention.bytes=-1 --config segment.ms=604800000
for f in "$S"/kafka-password-*; do
  user="lfr-${f##*/kafka-password-}"
  # kafka-configs takes the credential only on its command line; this short-lived container is the
  # only process that sees it (the broker stores a salted hash)
  /opt/kafka/bin/kafka-configs.sh --bootstrap-server "$B" --command-config /tmp/admin.properties --alter \
    --entity-type users --entity-name "$user" --add-config "SCRAM-SHA-512=[password=$(cat "$f")]" >/dev/null
  echo "kafka-init: SCRAM user $user registered"
done
KAFKA_BOOTSTRAP="$B" KAFKA_ADMIN_CONFIG=/tmp/admin.properties KAFKA_ACLS=/opt/kafka/bin/kafka-acls.sh \
  bash /opt/lfr/kafka/acls.sh >/dev/null
echo "kafka-init: topics, users and ACLs in place"
