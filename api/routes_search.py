"""``/v1/search`` (hybrid search) and ``/v1/graph/symbol`` (a symbol's neighbourhood).

Queries are embedded here, by the API's query embedder and the query-embedding cache;
clients never send vectors. Bad input is a 4xx that names the parameter (the checks of
``pipeline.search.query``); an unknown repository or symbol is a 404.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import ReadTenant, State
from api.graph_svg import render_svg
from api.search_slots import (
    CLIENT_GONE_STATUS,
    ClientGoneError,
    SearchBusyError,
    in_thread,
    until_gone,
)
from api.state import ApiState
from pipeline.errors import InvalidInputError, NotFoundError, PipelineError
from pipeline.models import RepoRef
from pipeline.refs import index_ref_name
from pipeline.search.query import SearchFilters, SearchRequest, check_request
from pipeline.search.searcher import SearchResponse, ref_divergence, symbol_graph
from tasks import recording

router = APIRouter(tags=["search"])
log = logging.getLogger("quarry.api")

Text = Annotated[str | None, Query(max_length=10_000)]


def _listed(value: str | None, name: str) -> tuple[str, ...]:
    """A comma-separated parameter as a tuple (empty parts dropped)."""
    if value is None:
        return ()
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    if len(parts) > 50:
        raise InvalidInputError(f"{name}: at most 50 values, got {len(parts)}")
    return parts


BUSY: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "The tenant's searches and graph reads in this API process are at"
        " their bound: its line of waiting ones is full, or this one waited `search_tenant_wait_s`"
        " (the body names the tenant and the bound): retry after Retry-After.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
}


@router.get("/v1/search", responses=BUSY, response_model=None)
async def search(
    *,
    tenant: ReadTenant,
    state: State,
    http: Request,
    q: Annotated[str, Query(description="What to look for: words, identifiers, a question.")],
    repo: Annotated[str | None, Query(description="Repositories, comma-separated.")] = None,
    lang: Annotated[str | None, Query(description="Languages, comma-separated.")] = None,
    path: Annotated[str | None, Query(description="Path glob: * and ?; a folder.")] = None,
    kind: Annotated[str | None, Query(description="function, method, class, module, other")] = None,
    k: Annotated[int, Query(description="How many results (1-1000).")] = 10,
    expand: Annotated[str | None, Query(description="callers,callees,container")] = None,
    mode: Annotated[str, Query(description="hybrid, vector or lexical")] = "hybrid",
    ref: Annotated[
        str | None,
        Query(
            max_length=256,
            description="The ref (branch, tag, pull request) to search;"
            " default: each repository's default ref.",
        ),
    ] = None,
    commit: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Search as of this commit (7-40 hex digits; a folder's tree-<hex>),"
            " when a ref still holds it.",
        ),
    ] = None,
) -> Response:
    """Hybrid search of the tenant's searchable snapshots: ``{"results": [...]}``, each
    with path, lines, symbol, kind, language, fused score, snippet and the retrievers
    that found it; with ``expand``, its graph neighbours. Each repository is read at its
    default ref, or ``ref``, or ``commit`` (404 when a named repository has no such ref
    or no ref holds the commit). A few searches of one tenant run at once in each API
    process, more wait in line; past that line, or after waiting too long: 429 with
    Retry-After. A search whose client leaves while it waits leaves the line."""
    started = time.perf_counter()
    try:
        request = check_request(
            SearchRequest(
                tenant=tenant,
                query=q,
                repos=_listed(repo, "repo"),
                filters=SearchFilters(
                    languages=_listed(lang, "lang"),
                    path_glob=path or "",
                    kinds=_listed(kind, "kind"),
                ),
                k=k,
                mode=mode,
                expand=_listed(expand, "expand"),
                ref=index_ref_name(ref) if ref else None,
                commit=commit or None,
            )
        )  # bad input is refused before it takes a slot
        response, body = await until_gone(http.receive, _in_share(state, tenant, request))
    except InvalidInputError:
        recording.record_bad_search(mode)
        raise
    except SearchBusyError:
        recording.record_busy_search(mode)
        raise
    except ClientGoneError:
        recording.record_gone_search(mode)
        return Response(status_code=CLIENT_GONE_STATUS)
    recording.record_search(mode, response.timings_s, time.perf_counter() - started)
    return body


async def _in_share(
    state: ApiState, tenant: str, request: SearchRequest
) -> tuple[SearchResponse, JSONResponse]:
    """A slot of the tenant's share first (waiting on the event loop, holding no thread),
    then the search itself in the thread pool: it blocks on stores."""
    async with state.search_slots.slot(tenant, await tenant_share(state, tenant)) as waited_s:
        recording.record_search_queue(waited_s)
        return await in_thread(_searched, state, request)


async def tenant_share(state: ApiState, tenant: str) -> int:
    """How many of the tenant's searches run at once here: its quota's
    ``search_concurrency`` (an operator's, else the setting's), from its quota status
    (:meth:`ApiState.quota_status_soon`). When the store cannot answer, the last status
    read, however old (a tenant cut to 1 stays at 1), else the setting's: a search does
    not fail on it."""
    try:
        return (await state.quota_status_soon(tenant)).limits.search_concurrency
    except PipelineError as exc:
        last = state.last_quota_status(tenant)
        log.warning(
            "search share of tenant %r: quota status unread (%s), %s",
            tenant,
            exc,
            "its last one" if last else "the default",
        )
        if last is not None:
            return last.limits.search_concurrency
        return state.settings.search_tenant_concurrency


def _searched(state: ApiState, request: SearchRequest) -> tuple[SearchResponse, JSONResponse]:
    """The search and its answer, rendered, in a worker thread (the JSON of k 1,000
    results with their content is milliseconds of work the event loop should not do)."""
    response = state.searcher.search(request)
    return response, JSONResponse(response.as_json())


@router.get("/v1/graph/symbol", response_model=None, responses=BUSY)
async def graph_symbol(
    *,
    tenant: ReadTenant,
    state: State,
    http: Request,
    repo: Annotated[str, Query(min_length=1, max_length=200)],
    name: Annotated[str, Query(min_length=1, max_length=1000, description="Qualified or short.")],
    format: Annotated[Literal["json", "svg"], Query()] = "json",
    ref: Annotated[
        str | None,
        Query(
            max_length=256,
            description="A ref of the repository; the graph itself is"
            " its default ref's, and the answer names the files where the two differ.",
        ),
    ] = None,
) -> dict[str, Any] | Response:
    """The neighbourhood of the symbols named ``name`` (a qualified name, else a short
    name): callers, callees, containers, members, bases and subclasses, as
    ``{"nodes": [...], "edges": [...]}``; ``format=svg`` draws it. The code graph follows
    each repository's default ref: asked for another ``ref``, the answer says so
    (``graph_ref``) and lists the files where that ref differs (``differs``). It takes
    a place in the tenant's share as a search does (429 past it; it leaves the line if
    its client leaves)."""
    repository = RepoRef(tenant, repo)
    ref_name = index_ref_name(ref)

    def read() -> dict[str, Any]:
        if state.searcher_index.missing_repositories(tenant, [repo]):
            raise NotFoundError(f"repo: no repository named {repo!r}")
        divergence = ref_divergence(state.jobs.snapshots, repository, ref_name)
        return symbol_graph(state.graph, repository, name) | divergence

    async def in_share() -> dict[str, Any]:
        async with state.search_slots.slot(tenant, await tenant_share(state, tenant)):
            return await in_thread(read)

    try:
        found = await until_gone(http.receive, in_share())
    except ClientGoneError:
        return Response(status_code=CLIENT_GONE_STATUS)
    if format == "svg":
        svg = await run_in_threadpool(render_svg, found)
        return Response(svg, media_type="image/svg+xml")
    return found
