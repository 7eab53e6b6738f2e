"""The Pod Security rules every SpectraMonitor pod meets: Kubernetes' "restricted" level plus our own
(uid and gid 10001, a read-only root filesystem with a writable emptyDir /tmp). One check for the pods
the chart renders and the probe Deployments the operator makes:

    from tests.support.pod_security import PROBE_SYSCTLS, assert_restricted
    assert_restricted(deployment["spec"]["template"]["spec"], sysctls=PROBE_SYSCTLS, where="probe")

What legitimately differs between pods is a parameter: the sysctls a pod needs (probe pods set the
ping group range so that ICMP works without NET_RAW; no other pod sets any).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UID = 10001
TMP = "/tmp"

# Kubernetes' safe sysctls (pod-security-standards, restricted/baseline): the only ones a pod may set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
ALLOWED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
# ICMP checks without NET_RAW: unprivileged ping sockets for every group (the probe pods' one sysctl).
PROBE_SYSCTLS: Mapping[str, str] = {"net.ipv4.ping_group_range": "0 2147483647"}
CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")


def assert_restricted(
    pod_spec: Mapping[str, Any],
    *,
    where: str = "pod",
    uid: int = UID,
    tmp: str = TMP,
    sysctls: Mapping[str, str] | None = None,
) -> None:
    """Fail, naming `where` and the offending field, when `pod_spec` or any of its containers breaks a rule.

    `sysctls` are the sysctls the pod must set, exactly (none by default); any of them must be safe.
    """
    pod_sc: Mapping[str, Any] = pod_spec.get("securityContext") or {}
    assert pod_sc.get("runAsNonRoot") is True, f"{where}: pod securityContext.runAsNonRoot must be true"
    assert pod_sc.get("runAsUser") == uid, f"{where}: pod runAsUser must be {uid}"
    assert pod_sc.get("runAsGroup") == uid, f"{where}: pod runAsGroup must be {uid}"
    assert pod_sc.get("fsGroup") == uid, f"{where}: pod fsGroup must be {uid}"
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    assert pod_seccomp == "RuntimeDefault", f"{where}: pod seccompProfile must be RuntimeDefault"
    found = {item["name"]: item["value"] for item in pod_sc.get("sysctls") or []}
    assert set(found) <= SAFE_SYSCTLS, f"{where}: unsafe sysctls {set(found) - SAFE_SYSCTLS}"
    assert found == dict(sysctls or {}), f"{where}: sysctls {found}, expected {dict(sysctls or {})}"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod_spec.get(key), f"{where}: pod sets {key}"
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes") or []}
    for name, volume in volumes.items():
        assert "hostPath" not in volume, f"{where}: hostPath volume {name}"
        kinds = set(volume) - {"name"}
        assert kinds <= ALLOWED_VOLUME_TYPES, f"{where}: volume {name} uses {kinds - ALLOWED_VOLUME_TYPES}"
    containers = [container for kind in CONTAINER_KINDS for container in pod_spec.get(kind) or []]
    assert pod_spec.get("containers"), f"{where}: no containers"
    for container in containers:
        _assert_container_restricted(f"{where}/{container['name']}", container, pod_sc, volumes, uid=uid, tmp=tmp)


def _assert_container_restricted(
    where: str,
    container: Mapping[str, Any],
    pod_sc: Mapping[str, Any],
    volumes: Mapping[str, Mapping[str, Any]],
    *,
    uid: int,
    tmp: str,
) -> None:
    sc: Mapping[str, Any] = container.get("securityContext") or {}
    assert sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot must be true"
    assert sc.get("runAsUser", pod_sc.get("runAsUser")) == uid, f"{where}: runAsUser must be {uid}"
    assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation must be false"
    assert not sc.get("privileged"), f"{where}: privileged"
    assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem must be true"
    capabilities: Mapping[str, Any] = sc.get("capabilities") or {}
    assert capabilities.get("drop") == ["ALL"], f"{where}: capabilities.drop must be [ALL]"
    assert not capabilities.get("add"), (
        f"{where}: capabilities.add {capabilities.get('add')} (no NET_RAW: ICMP uses the ping_group_range sysctl)"
    )
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    assert seccomp == "RuntimeDefault", f"{where}: seccompProfile must be RuntimeDefault"
    for port in container.get("ports") or []:
        assert "hostPort" not in port, f"{where}: hostPort"
    mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts") or []}
    assert tmp in mounts, f"{where}: no writable {tmp} (the root filesystem is read-only)"
    assert "emptyDir" in volumes.get(mounts[tmp], {}), f"{where}: {tmp} must be an emptyDir"
