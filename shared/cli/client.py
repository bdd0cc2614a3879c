"""A small HTTP client for the management API, configured by AUTOMATIONS_URL and
AUTOMATIONS_TOKEN (never logs or prints the token)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import requests

__all__ = ["ApiClient", "ClientError", "client"]

API_PREFIX = "/api/v1"


class ClientError(Exception):
    """An error to show the user; ``exit_code`` 1 for API errors, 2 for configuration,
    3 when the server cannot be reached."""

    def __init__(
        self, message: str, *, status: int = 0, code: str = "", exit_code: int = 1
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.code, self.exit_code = message, status, code, exit_code


class ApiClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._http = requests.Session()

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiClient:
        env = os.environ if env is None else env
        url = env.get("AUTOMATIONS_URL", "").strip()
        token = env.get("AUTOMATIONS_TOKEN", "").strip()
        if not url:
            raise ClientError(
                "AUTOMATIONS_URL is not set (e.g. http://127.0.0.1:8080)", exit_code=2
            )
        if not token:
            raise ClientError(
                "AUTOMATIONS_TOKEN is not set (create one with `automations tokens create EMAIL`)",
                exit_code=2,
            )
        return cls(url, token)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        url = f"{self.base_url}{API_PREFIX}{path}"
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != []}
        try:
            resp = self._http.request(
                method,
                url,
                params=clean,
                json=json,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ClientError(
                f"cannot reach {self.base_url}: {type(exc).__name__}", exit_code=3
            ) from None
        if resp.status_code == 204:
            return None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            if isinstance(body, dict) and "message" in body:
                code = str(body.get("code") or "error")
                raise ClientError(
                    f"{body['message']} (HTTP {resp.status_code}, {code})",
                    status=resp.status_code,
                    code=code,
                )
            raise ClientError(f"HTTP {resp.status_code} from {url}", status=resp.status_code)
        return body

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def iterate(self, path: str, *, max_items: int | None = None, **params: Any) -> Iterator[Any]:
        """Every item of a cursor-paginated list (up to ``max_items``)."""
        cursor: str | None = None
        count = 0
        while True:
            page = self.get(path, cursor=cursor, **params)
            for item in page["items"]:
                yield item
                count += 1
                if max_items is not None and count >= max_items:
                    return
            cursor = page.get("next_cursor")
            if not cursor:
                return


def client() -> ApiClient:
    """The client configured by AUTOMATIONS_URL and AUTOMATIONS_TOKEN (ClientError if unset)."""
    return ApiClient.from_env()
