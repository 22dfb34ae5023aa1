#!/usr/bin/env bash
# Kafka broker of docker-compose.secure.yml: KRaft single node, SASL_SSL + SCRAM-SHA-512 on
# 9092 for clients and inter-broker traffic, the controller listener on mutual TLS (9093), the
# StandardAuthorizer with no access unless an ACL allows it (deploy/kafka/acls.sh, run by kafka-init).
# Secrets (compose `secrets:`, never in env or the image): /run/secrets/kafka-server.pem (PKCS#8 key +
# certificate chain, subject CN=kafka, SANs kafka/localhost), /run/secrets/kafka-ca.crt, and
# /run/secrets/kafka-admin-password (the `lfr-admin` super user: inter-broker and kafka-init).
# The properties holding the admin's JAAS line are written to /tmp (tmpfs, 0600), never to argv.
set -euo pipefail
umask 077
S=/run/secrets
admin_pw="$(cat "$S/kafka-admin-password")"
conf=/tmp/server.properties
cat > "$conf" <<EOP
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=SECURE://:9092,CONTROLLER://:9093
advertised.listeners=SECURE://kafka:9092
listener.security.protocol.map=SECURE:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=SECURE
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="lfr-admin" password="${admin_pw}";
ssl.keystore.type=PEM
ssl.keystore.location=$S/kafka-server.pem
ssl.truststore.type=PEM
ssl.truststore.location=$S/kafka-ca.crt
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:lfr-admin;User:CN=kafka
log.dirs=/var/lib/kafka/data
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.check.interval.ms=5000
message.max.bytes=4195328
EOP
# the admin's SCRAM credential must exist before the broker can authenticate to itself: stored at
# format time (first start only; --ignore-formatted keeps an existing data dir)
cluster_id_file=/var/lib/kafka/data/.lfr-cluster-id
[ -s "$cluster_id_file" ] || /opt/kafka/bin/kafka-storage.sh random-uuid > "$cluster_id_file"
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$(cat "$cluster_id_file")" -c "$conf" \
  --add-scram "SCRAM-SHA-512=[name=lfr-admin,password=${admin_pw}]" >/dev/null
# client settings for the healthcheck (same container)
cat > /tmp/admin.properties <<EOP
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="lfr-admin" password="${admin_pw}";
ssl.truststore.type=PEM
ssl.truststore.location=$S/kafka-ca.crt
EOP
unset admin_pw
exec /opt/kafka/bin/kafka-server-start.sh "$conf"
