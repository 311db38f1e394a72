"""A client of Quarry's own HTTP API, for the CLI (and CI hooks written in Python).

Maps answers to pipeline errors once, here: 429 -> QueueFullError with the server's
``Retry-After``; 401/403 -> ConfigError (the token); 404 and other 4xx ->
InvalidInputError with the server's detail; 5xx and connection errors ->
StoreUnavailableError("api", ...).

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from pipeline.errors import ConfigError, InvalidInputError, QueueFullError, StoreUnavailableError


@contextmanager
def _http_errors(base_url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise StoreUnavailableError("api", f"{base_url} timed out: {exc}") from exc
    except httpx.TransportError as exc:
        raise StoreUnavailableError("api", f"cannot reach {base_url}: {exc}") from exc


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', ())[1:])}: {d.get('msg')}" for d in detail
        )
    return str(detail)[:500]


class QuarryApiClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def _check(self, response: httpx.Response) -> Any:
        code = response.status_code
        if code == 429:
            retry_after = float(response.headers.get("Retry-After", "1") or 1)
            raise QueueFullError("ingest", 0, 0, retry_after)
        if code in (401, 403):
            fix = "to one with that scope" if code == 403 else "(`quarry token create --tenant T`)"
            raise ConfigError(
                f"the API at {self.base_url} refused the token ({_detail(response)}): "
                f"set QUARRY_API_TOKEN {fix}"
            )
        if 400 <= code < 500:
            raise InvalidInputError(_detail(response))
        if code >= 500:
            raise StoreUnavailableError(
                "api", f"{self.base_url} answered {code}: {_detail(response)}"
            )
        return None if code == 204 else response.json()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        with _http_errors(self.base_url):
            return self._check(self._client.request(method, path, json=body))

    def webhook_secret(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/webhooks/secret")
        return result

    def rotate_webhook_secret(self, overlap_s: float) -> dict[str, Any]:
        body = {"overlap_s": overlap_s}
        result: dict[str, Any] = self._call("POST", "/v1/webhooks/secret/rotate", body)
        return result

    def add_credential(self, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/credentials", body)
        return result

    def rotate_credential(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", f"/v1/credentials/{quote(name, safe='')}", body)
        return result

    def credentials(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/v1/credentials")["credentials"]
        return found

    def remove_credential(self, name: str) -> None:
        self._call("DELETE", f"/v1/credentials/{quote(name, safe='')}")

    def add_push_hook(self, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/push-hooks", body)
        return result

    def push_hooks(self, repo: str | None = None) -> list[dict[str, Any]]:
        path = "/v1/push-hooks" if repo is None else f"/v1/push-hooks?repo={quote(repo, safe='')}"
        found: list[dict[str, Any]] = self._call("GET", path)["push_hooks"]
        return found

    def remove_push_hook(self, hook_id: str) -> None:
        self._call("DELETE", f"/v1/push-hooks/{quote(hook_id, safe='')}")

    def create_job(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        params = {"dry_run": "true"} if dry_run else None
        with _http_errors(self.base_url):
            result: dict[str, Any] = self._check(
                self._client.post("/v1/jobs", json=dict(body), params=params)
            )
        return result

    def upload_archive(self, path: Path, params: Mapping[str, str]) -> dict[str, Any]:
        """Upload ``path`` as a job's archive; an archive the API refuses is named by the
        user's path (the API knows only "archive")."""
        try:
            with _http_errors(self.base_url), path.open("rb") as handle:
                response = self._client.post(
                    "/v1/jobs/archive",
                    content=handle,
                    params=dict(params),
                    headers={"Content-Type": "application/gzip"},
                )
                result: dict[str, Any] = self._check(response)
        except InvalidInputError as exc:
            detail = str(exc).removeprefix("archive: ")
            raise InvalidInputError(f"archive {path}: {detail}") from None
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        with _http_errors(self.base_url):
            result: dict[str, Any] = self._check(self._client.get(f"/v1/jobs/{job_id}"))
        return result

    def jobs(
        self, repo: str | None = None, limit: int = 50, *, status: str | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if repo:
            params["repo"] = repo
        if status:
            params["status"] = status
        with _http_errors(self.base_url):
            result = self._check(self._client.get("/v1/jobs", params=params))
        jobs: list[dict[str, Any]] = result["jobs"]
        return jobs

    def cancel(self, job_id: str) -> dict[str, Any]:
        with _http_errors(self.base_url):
            result: dict[str, Any] = self._check(self._client.delete(f"/v1/jobs/{job_id}"))
        return result

    def reconcile(self, repo: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with _http_errors(self.base_url):
            result: dict[str, Any] = self._check(
                self._client.post(f"/v1/repos/{quote(repo, safe='/')}/reconcile", json=dict(body))
            )
        return result

    def delete_repo(self, repo: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/v1/repos/{quote(repo, safe='/')}")
        return result

    def repo_deletion(self, deletion_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", f"/v1/repo-deletions/{quote(deletion_id, safe='')}"
        )
        return result

    def refs(self, repo: str) -> dict[str, Any]:
        with _http_errors(self.base_url):
            result: dict[str, Any] = self._check(
                self._client.get("/v1/refs", params={"repo": repo})
            )
        return result

    def delete_ref(self, repo: str, ref: str) -> dict[str, Any]:
        with _http_errors(self.base_url):
            result: dict[str, Any] = self._check(
                self._client.delete("/v1/refs", params={"repo": repo, "ref": ref})
            )
        return result

    def repos(self) -> list[dict[str, Any]]:
        with _http_errors(self.base_url):
            result = self._check(self._client.get("/v1/repos"))
        repos: list[dict[str, Any]] = result["repos"]
        return repos

    def search(
        self,
        q: str,
        *,
        repo: str | None = None,
        lang: str | None = None,
        path: str | None = None,
        kind: str | None = None,
        k: int = 10,
        mode: str = "hybrid",
        expand: tuple[str, ...] = (),
        ref: str | None = None,
        commit: str | None = None,
    ) -> dict[str, Any]:
        """``GET /v1/search``: ``{"query", "mode", "results": [...]}``."""
        params: dict[str, Any] = {"q": q, "k": k, "mode": mode}
        named = {
            "repo": repo,
            "lang": lang,
            "path": path,
            "kind": kind,
            "ref": ref,
            "commit": commit,
        }
        params.update({key: value for key, value in named.items() if value})
        if expand:
            params["expand"] = ",".join(expand)
        with _http_errors(self.base_url):
            result: dict[str, Any] = self._check(self._client.get("/v1/search", params=params))
        return result

    def graph_symbol(self, repo: str, name: str) -> dict[str, Any]:
        """``GET /v1/graph/symbol``: the symbol's neighbourhood, ``{"nodes", "edges"}``."""
        params = {"repo": repo, "name": name}
        with _http_errors(self.base_url):
            result: dict[str, Any] = self._check(
                self._client.get("/v1/graph/symbol", params=params)
            )
        return result
