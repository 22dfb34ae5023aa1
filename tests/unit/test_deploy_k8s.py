"""k8s/ overlays rendered with kustomize and validated offline.

- kubeconform (strict) against the Kubernetes v1.33 JSON schemas shipped by the PyPI wheel
  kubernetes-validate and the KEDA CRD schemas from the KEDA Go module (install-tools.sh).
- Strimzi (Kafka, KafkaNodePool, KafkaTopic, KafkaUser) and Milvus-operator (Milvus) CRD schemas
  could not be obtained from a registry here (Strimzi's Maven `api` jar carries no CRD YAML; the
  Milvus operator's Go module is refused by the proxy), so those resources get the structural
  checks below instead.
- Policy checks: hardened pods, gRPC probes, PDBs, GPU scheduling, NetworkPolicies, KEDA.
"""

from __future__ import annotations

import pytest
import yaml

from deploy_support import ROOT, SCHEMAS, kustomize_build, missing, run, tool, versions

OVERLAYS = ("dev", "prod")
SERVICES = {"ingest": 50051, "recognizer": 50052, "matcher": 50053, "alerts": 50054, "watchlist": 50055,
            "officers": 50056}
NO_SCHEMA = ("Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Milvus")


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, str, list[dict]]:
    text, docs = kustomize_build(ROOT / "k8s" / "overlays" / request.param)
    return request.param, text, docs


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}



def _hardened(pod: dict) -> dict:
    """The pod's one container, after checking the hardening every LFR workload has."""
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(c["resources"]["limits"])
    return c

def test_kubeconform_strict(rendered, tmp_path) -> None:
    overlay, text, _ = rendered
    k8s = SCHEMAS / f"k8s-{versions()['KUBERNETES_SCHEMA_VERSION']}"
    crds = SCHEMAS / "crds"
    if (not (k8s / "deployment-apps-v1.json").is_file()
            or not (crds / "keda.sh" / "scaledobject_v1alpha1.json").is_file()):
        missing("the Kubernetes/KEDA JSON schemas")
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(text, encoding="utf-8")
    proc = run([tool("kubeconform", "KUBECONFORM_VERSION"), "-strict", "-summary", "-output", "json",
                "-schema-location", f"{k8s}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
                "-schema-location",
                f"{crds}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
                "-skip", ",".join(NO_SCHEMA), manifest])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import json
    summary = json.loads(proc.stdout)["summary"]
    assert summary["invalid"] == 0 and summary["errors"] == 0
    assert summary["valid"] >= 60  # everything but the skipped CRs was really validated


def test_kubeconform_catches_an_invalid_deployment(tmp_path) -> None:
    k8s = SCHEMAS / f"k8s-{versions()['KUBERNETES_SCHEMA_VERSION']}"
    if not (k8s / "deployment-apps-v1.json").is_file():
        missing("the Kubernetes JSON schemas")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                                   "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                                            "template": {"metadata": {"labels": {"a": "b"}},
                                                         "spec": {"containers": [{"name": "c", "image": "i",
                                                                                  "grpcProbe": {}}]}}}}))
    proc = run([tool("kubeconform", "KUBECONFORM_VERSION"), "-strict",
                "-schema-location", f"{k8s}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json", bad])
    assert proc.returncode != 0 and "grpcProbe" in proc.stdout


def test_service_deployments_are_hardened(rendered) -> None:
    overlay, _, docs = rendered
    deployments = by_kind(docs, "Deployment")
    for name, port in SERVICES.items():
        dep = deployments[f"lfr-{name}"]
        pod = dep["spec"]["template"]["spec"]
        c = _hardened(pod)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if overlay == "prod":  # mTLS: the image's probe (test_deploy_k8s_secrets.py)
                assert c[probe]["exec"]["command"][-1].endswith("grpc_health_probe.py"), (name, probe)
            else:
                assert c[probe]["grpc"]["port"] == port, (name, probe)
        refs = [e["configMapRef"]["name"] for e in c["envFrom"]]
        assert "lfr-common" in refs and f"lfr-{name}" in refs
        assert "lfr-conn-redis" in refs  # every service has a Redis section (frame keys, audit lock, state)
        assert c["image"].startswith(f"lfr/{name}:")
        if overlay == "prod":
            assert not c["image"].endswith(":dev") and dep["spec"]["replicas"] >= 3


def test_every_workload_has_a_pdb(rendered) -> None:
    _, _, docs = rendered
    pdb_selectors = [d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] == "PodDisruptionBudget"]
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert any(sel.items() <= labels.items() for sel in pdb_selectors), d["metadata"]["name"]


def test_triton_runs_on_gpu_nodes(rendered) -> None:
    _, _, docs = rendered
    pod = by_kind(docs, "Deployment")["lfr-triton"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["initContainers"][0]["image"].startswith("lfr/models:")


def test_keda_scales_recognizer_and_matcher_on_lag(rendered) -> None:
    _, _, docs = rendered
    scaled = by_kind(docs, "ScaledObject")
    for name, topic in (("recognizer", "lfr.frames.v1"), ("matcher", "lfr.faces.v1")):
        so = scaled[f"lfr-{name}"]
        assert so["spec"]["scaleTargetRef"]["name"] == f"lfr-{name}"
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "kafka" and trigger["metadata"]["topic"] == topic
        assert trigger["metadata"]["consumerGroup"] == f"lfr-{name}"


def test_network_policies_default_deny_then_data_flow(rendered) -> None:
    _, _, docs = rendered
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert deny["ingress"] == [] and deny["egress"] == []

    def egress_targets(service: str) -> set[str]:
        out = set()
        for p in policies.values():
            if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") != service:
                continue
            for rule in p["spec"].get("egress", []):
                for peer in rule.get("to", []):
                    labels = peer.get("podSelector", {}).get("matchLabels", {})
                    out.add(labels.get("app.kubernetes.io/name")
                            or ("milvus" if "matchExpressions" in peer.get("podSelector", {}) else "?"))
        return out

    assert egress_targets("recognizer") == {"triton", "redis"}  # frame data keys
    assert egress_targets("watchlist") == {"milvus", "triton", "redis"}  # audit writer's lock
    assert egress_targets("matcher") == {"milvus", "redis"}
    assert egress_targets("alerts") == {"redis", "officers"}
    assert egress_targets("officers") == {"redis"}
    # nothing but the recognizer and watchlist reaches Triton
    (rule,) = policies["allow-triton-ingress"]["spec"]["ingress"]
    assert ({p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"]}
            == {"recognizer", "watchlist"})
    # every service has a Redis section (and its own ACL user): all may reach Redis, nothing else
    redis_from = {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                  for p in policies["allow-redis-ingress"]["spec"]["ingress"][0]["from"]}
    assert redis_from == set(SERVICES) | {"console"}  # the console: sessions (ACL user lfr-console)


CONSOLE_POD = {"app.kubernetes.io/name": "console", "app.kubernetes.io/component": "console",
               "app.kubernetes.io/part-of": "lfr"}


def _selects(policy: dict, labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] != "In" or labels.get(expr["key"]) not in expr["values"]:
            return False
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_console_network_policy_only_grpc_apis_redis_dns_and_the_ingress_controller(rendered) -> None:
    """Every policy that selects the console's pods, together: out only to the three gRPC APIs it calls, Redis
    and DNS (no Kafka, Milvus, Triton, no other port, nothing outside); in only from the Ingress controller on
    its HTTP port, and Prometheus (namespace monitoring) on its metrics port."""
    _, _, docs = rendered
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "lfr-console"]
    assert dep["spec"]["template"]["metadata"]["labels"] == CONSOLE_POD
    policies = [p for p in by_kind(docs, "NetworkPolicy").values() if _selects(p, CONSOLE_POD)]
    egress, ingress = set(), set()
    for p in policies:
        for rule in p["spec"].get("egress", []):
            assert rule.get("to"), p["metadata"]["name"]  # no rule open to every destination
            for peer in rule["to"]:
                pods = peer.get("podSelector", {}).get("matchLabels", {})
                ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name", "")
                for port in rule["ports"]:
                    egress.add((ns, pods.get("app.kubernetes.io/name") or pods.get("k8s-app"), port["port"]))
        for rule in p["spec"].get("ingress", []):
            assert rule.get("from"), p["metadata"]["name"]
            for peer in rule["from"]:
                ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name", "")
                pods = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                ingress |= {(ns, pods, port["port"]) for port in rule["ports"] if port["port"] in (8080, 9107)}
    assert egress == {("", "alerts", 50054), ("", "watchlist", 50055), ("", "officers", 50056), ("", "redis", 6379),
                      ("kube-system", "kube-dns", 53)}
    assert ingress == {("ingress-nginx", "ingress-nginx", 8080), ("monitoring", None, 9107)}
    # and the other side lets it in: the gRPC APIs are public (authenticated), Redis admits it by name
    assert "allow-services-to-kafka" not in {p["metadata"]["name"] for p in policies}


def test_console_deployment_is_hardened_and_probed_on_healthz(rendered) -> None:
    overlay, _, docs = rendered
    dep = by_kind(docs, "Deployment")["lfr-console"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["serviceAccountName"] == "lfr-console"
    c = _hardened(pod)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "metrics": 9107}
    assert [e["configMapRef"]["name"] for e in c["envFrom"]] == ["lfr-console"]  # no Kafka, no service sections
    assert c["image"].startswith("lfr/console:")
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}
    svc = by_kind(docs, "Service")["lfr-console"]
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "console"}
    ingresses = by_kind(docs, "Ingress")
    if overlay == "prod":
        assert not c["image"].endswith(":dev") and dep["spec"]["replicas"] >= 2
        ing = ingresses["lfr-console"]["spec"]
        (tls,) = ing["tls"]
        (rule,) = ing["rules"]
        assert rule["host"] in tls["hosts"] and tls["secretName"]
        (path,) = rule["http"]["paths"]
        assert path["backend"]["service"] == {"name": "lfr-console", "port": {"name": "http"}}
        annotations = ingresses["lfr-console"]["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
        assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # the live alert stream (SSE)
    else:
        assert "lfr-console" not in ingresses  # dev: kubectl port-forward


def test_strimzi_resources_structure(rendered) -> None:
    """Structural check in place of the unobtainable Strimzi CRD schemas."""
    overlay, _, docs = rendered
    from services.common.topics import TOPICS

    (kafka,) = by_kind(docs, "Kafka").values()
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    pools = by_kind(docs, "KafkaNodePool")
    roles = {r for p in pools.values() for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    for pool in pools.values():
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert pool["spec"]["storage"]["type"] in ("jbod", "persistent-claim", "ephemeral")

    topics = {t["spec"]["topicName"]: t for t in by_kind(docs, "KafkaTopic").values()}
    assert set(topics) == {t.name for t in TOPICS}
    for spec in TOPICS:  # the broker configs match the services' own topic declarations
        cr = topics[spec.name]
        config = {k: str(v) for k, v in cr["spec"]["config"].items() if k != "min.insync.replicas"}
        assert config == spec.configs(), spec.name
        assert cr["spec"]["partitions"] >= spec.partitions
        assert cr["spec"]["replicas"] == (3 if overlay == "prod" else 1)
    assert int(topics["lfr.frames.v1"]["spec"]["config"]["retention.ms"]) <= 60_000
    assert int(topics["lfr.faces.v1"]["spec"]["config"]["retention.ms"]) <= 60_000
    assert int(topics["lfr.alerts.v1"]["spec"]["config"]["retention.ms"]) == 24 * 3600 * 1000
    assert int(topics["lfr.audit.v1"]["spec"]["config"]["retention.ms"]) == -1

    users = by_kind(docs, "KafkaUser")
    from services.common.acls import ACLS

    assert set(users) == {f"lfr-{s}" for s in SERVICES} | {"lfr-audit"} == {a.user for a in ACLS}
    for user in users.values():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        for acl in user["spec"]["authorization"]["acls"]:
            assert acl["resource"]["type"] in ("topic", "group") and acl["operations"]
    reads = {a["resource"]["name"] for a in users["lfr-recognizer"]["spec"]["authorization"]["acls"]
             if "Read" in a["operations"]}
    assert reads == {"lfr.frames.v1", "lfr.audit.v1", "lfr-recognizer"}
    if overlay == "prod":
        listeners = kafka["spec"]["kafka"]["listeners"]
        assert any(lst.get("authentication", {}).get("type") == "scram-sha-512" and lst["tls"] for lst in listeners)
        assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"


def test_milvus_resource_structure(rendered) -> None:
    """Structural check in place of the unobtainable Milvus-operator CRD schema."""
    overlay, _, docs = rendered
    (milvus,) = by_kind(docs, "Milvus").values()
    assert milvus["apiVersion"] == "milvus.io/v1beta1"
    assert milvus["spec"]["mode"] == ("cluster" if overlay == "prod" else "standalone")
    assert milvus["spec"]["components"]["image"].startswith("milvusdb/milvus:")
    assert set(milvus["spec"]["dependencies"]) >= {"etcd", "storage"}
    assert not set(milvus["spec"]) - {"mode", "components", "dependencies", "config", "hookConfig"}


def test_redis_is_sentinel_in_prod(rendered) -> None:
    overlay, _, docs = rendered
    sts = by_kind(docs, "StatefulSet")["lfr-redis"]
    names = [c["name"] for c in sts["spec"]["template"]["spec"]["containers"]]
    if overlay == "prod":
        assert sts["spec"]["replicas"] == 3 and "sentinel" in names
    else:
        assert sts["spec"]["replicas"] == 1 and names == ["redis"]


DEV_CERTS = "/var/lib/lfr/dev-certs"
CHECKPOINTS = "/var/lib/lfr/audit-checkpoints"


def _mount_of(container: dict, path: str) -> dict:
    """The volume mount that holds ``path`` (the longest mountPath above it)."""
    holding = [m for m in container["volumeMounts"] if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")]
    assert holding, path
    return max(holding, key=lambda m: len(m["mountPath"]))


def test_every_auditing_service_has_its_audit_key_keyring_and_checkpoints(rendered, monkeypatch) -> None:
    """The signed audit log in every overlay: without a signing key every audited action fails and the watchlist
    service never becomes ready. dev (components/dev-audit-keys): an init container makes every key on a shared
    claim, mounted read-only, each service naming its own; prod (components/secure-services): its own key only,
    from its Secret, and nothing of the dev component. Checkpoints on lfr-audit-checkpoints, read-write; the
    keyring where AuditService.Verify runs (watchlist); each service's settings class reads these paths."""
    import os

    from services.common.audit import WRITERS
    from services.common.pki import SERVICES as AUDITING  # every gRPC service audits api.refused
    from test_deploy_settings import settings_class

    overlay, text, docs = rendered
    assert set(WRITERS) <= set(AUDITING) == set(SERVICES)
    config_maps = {n: d.get("data", {}) for n, d in by_kind(docs, "ConfigMap").items()}
    claims = by_kind(docs, "PersistentVolumeClaim")
    assert "lfr-audit-checkpoints" in claims
    if overlay == "prod":
        assert "lfr-dev-audit-keys" not in text and DEV_CERTS not in text  # never both components
    for name in AUDITING:
        pod = by_kind(docs, "Deployment")[f"lfr-{name}"]["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        env: dict[str, str] = {}
        for ref in c["envFrom"]:
            env.update(config_maps[ref["configMapRef"]["name"]])
        key, checkpoints = env["LFR_AUDIT__SIGNING_KEY_FILE"], env["LFR_AUDIT__CHECKPOINT_DIR"]
        assert checkpoints == CHECKPOINTS
        cp = _mount_of(c, checkpoints)
        assert cp["mountPath"] == CHECKPOINTS and not cp.get("readOnly"), name
        assert volumes[cp["name"]]["persistentVolumeClaim"] == {"claimName": "lfr-audit-checkpoints"}, name
        key_mount = _mount_of(c, key)
        assert key_mount["readOnly"] is True, name
        if name == "watchlist":
            assert _mount_of(c, env["LFR_AUDIT__KEYRING_DIR"])["readOnly"] is True
        else:
            assert "LFR_AUDIT__KEYRING_DIR" not in env, name
        if overlay == "dev":
            assert key == f"{DEV_CERTS}/audit/{name}.key", name
            assert volumes[key_mount["name"]]["persistentVolumeClaim"] == {"claimName": "lfr-dev-audit-keys"}, name
            (init,) = pod["initContainers"]
            assert init["image"] == c["image"], name  # the service's own image, run before it
            assert init["command"] == ["python", "-m", "services.cli.main", "audit", "keys", "init", "--dir", DEV_CERTS]
            (out,) = [m for m in init["volumeMounts"] if m["mountPath"] == DEV_CERTS]
            assert out["name"] == key_mount["name"] and not out.get("readOnly"), name
            sc = init["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert pod["securityContext"]["runAsUser"] == 10001, name
        else:
            assert not pod.get("initContainers"), name
            sources = volumes[key_mount["name"]]["projected"]["sources"]
            own = {(s["secret"]["name"], i["key"], i["path"]) for s in sources for i in s["secret"]["items"]}
            assert (f"lfr-{name}-secrets", "audit-signing.key", "audit/signing.key") in own, name
        for var in [k for k in os.environ if k.upper().startswith("LFR_")]:
            monkeypatch.delenv(var)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        s = settings_class(name)()
        assert str(s.audit.signing_key_file) == key and str(s.audit.checkpoint_dir) == CHECKPOINTS, name
