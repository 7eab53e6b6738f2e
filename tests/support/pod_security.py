"""The Pod Security rules every SpectraMonitor pod meets: Kubernetes' "restricted" level plus our own
(read-only root filesystem, uid 10001, a writable /tmp). Shared by the operator and chart tests:

    from tests.support.pod_security import assert_restricted
    assert_restricted(deployment["spec"]["template"]["spec"])
"""

from __future__ import annotations

from typing import Any

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


def assert_restricted(pod_spec: dict[str, Any], *, uid: int = 10001, tmp: str = "/tmp") -> None:
    """Fail with the offending field when `pod_spec` breaks a rule."""
    pod_sc = pod_spec.get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true"
    assert pod_sc.get("runAsUser") == uid, f"pod runAsUser must be {uid}"
    assert pod_sc.get("runAsGroup") == uid, f"pod runAsGroup must be {uid}"
    assert pod_sc.get("fsGroup") == uid, f"pod fsGroup must be {uid}"
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile must be RuntimeDefault"
    sysctls = {item["name"]: item["value"] for item in pod_sc.get("sysctls", [])}
    assert set(sysctls) <= SAFE_SYSCTLS, f"unsafe sysctls {set(sysctls) - SAFE_SYSCTLS}"
    assert sysctls.get("net.ipv4.ping_group_range") == "0 2147483647", "ICMP needs net.ipv4.ping_group_range"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod_spec.get(key), f"pod sets {key}"
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    for name, volume in volumes.items():
        kinds = set(volume) - {"name"}
        assert kinds <= ALLOWED_VOLUME_TYPES, f"volume {name} uses {kinds - ALLOWED_VOLUME_TYPES}"
    containers = [*pod_spec.get("initContainers", []), *pod_spec["containers"]]
    assert containers, "no containers"
    for container in containers:
        where = f"container {container['name']}"
        sc = container.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation must be false"
        assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem must be true"
        assert sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot must be true"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities must drop ALL"
        assert not sc.get("capabilities", {}).get("add"), f"{where}: adds capabilities"
        assert not sc.get("privileged"), f"{where}: privileged"
        assert sc.get("runAsUser", uid) != 0, f"{where}: runs as root"
        assert "seccompProfile" not in sc or sc["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost"), where
        for port in container.get("ports", []):
            assert "hostPort" not in port, f"{where}: hostPort"
        mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
        assert tmp in mounts, f"{where}: no writable {tmp}"
        assert "emptyDir" in volumes[mounts[tmp]], f"{where}: {tmp} must be an emptyDir"
