"""`spectra incidents list|ack|resolve|note`: a client of `/api/v1/incidents` on a running server.

`--server` (default $SPECTRA_URL) and `--token` (default $SPECTRA_TOKEN, an API token: `read` to list,
`incidents:write` to act). Exit codes: 0 done, 1 refused (the server's sentence on stderr), 2 usage,
69 the server cannot be reached. An incident is named by its number or its short code (as in the page).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx

EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 69
TIMEOUT_S: Final = 15.0


class ClientError(Exception):
    def __init__(self, code: int, sentence: str) -> None:
        super().__init__(sentence)
        self.code = code
        self.sentence = sentence


@dataclass(frozen=True)
class IncidentsClient:
    server: str
    token: str

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        url = self.server.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            answer = httpx.request(method, url, params=params, json=body, headers=headers, timeout=TIMEOUT_S)
        except httpx.InvalidURL:
            raise ClientError(EXIT_USAGE, f"--server {self.server!r} is not a URL.") from None
        except httpx.HTTPError as failed:
            raise ClientError(EXIT_UNREACHABLE, f"cannot reach {self.server}: {failed}") from None
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.status_code >= 400:
            detail = data.get("detail") if isinstance(data, dict) else None
            raise ClientError(EXIT_REFUSED, str(detail or f"the server answered {answer.status_code}"))
        return data

    def find(self, incident: str) -> dict[str, Any]:
        """The incident named by its code, else by its number."""
        text = incident.strip()
        if not text:
            raise ClientError(EXIT_USAGE, "name an incident by its number or code.")
        found = self._call("GET", "/api/v1/incidents", params={"code": text.upper(), "limit": 1})["items"]
        if found:
            return dict(found[0])
        if text.isdigit():
            return dict(self._call("GET", f"/api/v1/incidents/{int(text)}"))
        raise ClientError(EXIT_REFUSED, f"There is no incident {text} (or it is not yours to see).")

    def list(
        self, *, state: str | None, namespace: str | None, monitor: str | None, limit: int
    ) -> list[dict[str, Any]]:
        params = {
            key: value for key, value in (("state", state), ("namespace", namespace), ("monitor", monitor)) if value
        }
        params["limit"] = str(limit)
        return list(self._call("GET", "/api/v1/incidents", params=params)["items"])

    def act(self, incident: str, action: str, body: Any = None) -> dict[str, Any]:
        found = self.find(incident)
        return dict(self._call("POST", f"/api/v1/incidents/{quote(str(found['id']))}/{action}", body=body))


def line(item: dict[str, Any]) -> str:
    """One incident (as the API answers it, camelCase) as a person reads it at 3 am."""
    who = f" by {item['acknowledgedBy']}" if item.get("state") == "acknowledged" and item.get("acknowledgedBy") else ""
    return (
        f"{item['code']:<6} {item['state'] + who:<28} {item['namespace']}/{item['monitor']}  {item['title']}"
        f"  (opened {item['openedAt']}, #{item['id']})"
    )


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
