"""The restricted Pod Security profile as the chart applies it (and a bit stricter)."""

from __future__ import annotations

from typing import Any

UID = 10001


def assert_restricted(where: str, pod: dict[str, Any]) -> None:
    """Fail with `where` when a PodSpec or any of its containers is not restricted."""
    psc = pod.get("securityContext") or {}
    assert psc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot"
    assert psc.get("runAsUser") == UID, f"{where}: pod runAsUser"
    assert (psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{where}: pod seccompProfile"
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host), f"{where}: {host}"
    for volume in pod.get("volumes", []):
        assert "hostPath" not in volume, f"{where}: hostPath volume {volume['name']}"
    mounts_tmp = []
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(kind) or []:
            name = f"{where}/{container['name']}"
            sc = container.get("securityContext") or {}
            assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{name}: runAsNonRoot"
            assert sc.get("runAsUser", psc.get("runAsUser")) == UID, f"{name}: runAsUser"
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation"
            assert not sc.get("privileged"), f"{name}: privileged"
            assert sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem"
            caps = sc.get("capabilities") or {}
            assert caps.get("drop") == ["ALL"], f"{name}: capabilities.drop must be [ALL]"
            assert not caps.get("add"), f"{name}: capabilities.add {caps.get('add')} (no NET_RAW: ICMP uses the sysctl)"
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            assert seccomp == "RuntimeDefault", f"{name}: seccompProfile"
            mounts_tmp.append(any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", [])))
    assert all(mounts_tmp), f"{where}: every container needs a writable /tmp (emptyDir) on a read-only root"
