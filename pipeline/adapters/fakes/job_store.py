"""InMemoryJobStore and InMemoryTokenStore: behaving fakes of the PostgreSQL job and
token stores (the snapshot store's is ``memory_snapshot_store``).

They refuse the same input as the real stores (the checks of ``pipeline.statements.job_rows``),
answer a repeated create with the same job, let the first finisher win, keep tenants
apart and store token digests only. Each holds one lock, so threads may share one.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import builtins
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from pipeline.deletions import deleting
from pipeline.errors import InvalidInputError
from pipeline.jobs import (
    MAX_ERRORS,
    Job,
    JobError,
    JobRequest,
    JobStatus,
    WebhookDelivery,
    check_tenant,
)
from pipeline.models import RepoRef
from pipeline.refs import DEFAULT_REF
from pipeline.statements import job_rows, sql
from pipeline.tokens import (
    LAST_USED_RESOLUTION_S,
    SCOPES,
    ApiToken,
    IssuedToken,
    TokenGrant,
    check_scopes,
    new_token_id,
)

_Change = Callable[[Job], Job]


class InMemoryJobStore:
    """Jobs in a dict, keyed by canonical UUID."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._jobs: dict[str, Job] = {}
        self._order: dict[str, int] = {}  # creation order, to sort jobs made in one tick
        self._touched: dict[str, float] = {}  # the record's last change (updated_at)
        self._seq = itertools.count(1)  # jobs.seq: creation order, as PostgreSQL's sequence
        self._lock = threading.Lock()
        self._clock = clock
        # Repositories being deleted -> their deletion id (InMemoryRepoDeletionStore).
        self.deleting: dict[RepoRef, str] = {}
        # Each repository's default ref, fixed by its first job (repositories.default_ref).
        self.default_refs: dict[RepoRef, str] = {}
        # (repository, ref) -> the commit the ref holds, when an InMemorySnapshotStore was
        # given this store (as PostgreSQL's job_by_commit reads refs); else never known.
        self.ref_commit: Callable[[RepoRef, str], str | None] = lambda _repo, _ref: None

    def close(self) -> None:
        """Nothing to release; here for parity with the real store."""

    def create(self, request: JobRequest, *, job_id: str, commit: str | None) -> tuple[Job, bool]:
        job_id, commit = job_rows.check_request(request, job_id, commit)
        # Read outside this store's lock (the snapshot store's own lock reads jobs).
        first_ref = request.default_ref or request.ref_name or DEFAULT_REF
        wanted = request.ref_name or self.default_refs.get(request.repo, first_ref)
        held = self.ref_commit(request.repo, wanted)
        with self._lock:
            pending = self.deleting.get(request.repo)
            if pending is not None:
                raise deleting(request.repo, pending)
            default_ref = self.default_refs.setdefault(request.repo, first_ref)
            ref_name = request.ref_name or default_ref
            existing = self._existing(request, job_id, commit, ref_name, held)
            if existing is not None:
                return existing, False
            job = Job(
                job_id=job_id,
                repo=request.repo,
                commit=commit or "",
                status=JobStatus.QUEUED,
                stage="queued",
                source=request.source,
                callback_url=request.callback_url,
                idempotency_key=request.idempotency_key,
                created_at=time.time(),
                reindex_paths=tuple(request.reindex_paths),
                ref_name=ref_name,
                seq=next(self._seq),
            )
            self._jobs[job_id] = job
            self._order[job_id] = job.seq
            self._touched[job_id] = self._clock()
            return job, True

    def mark_deleting(
        self, repo: RepoRef, deletion_id: str, check: Callable[[builtins.list[Job]], None]
    ) -> str:
        """Under the store's lock, as PgRepoDeletionStore.begin under its row lock: the
        deletion already marked, or ``check`` of the repository's jobs (which raises to
        refuse) and then the mark of ``deletion_id``; the deletion id marked."""
        with self._lock:
            pending = self.deleting.get(repo)
            if pending is not None:
                return pending
            check([j for j in self._jobs.values() if j.repo == repo])
            self.deleting[repo] = deletion_id
            return deletion_id

    def unmark_deleting(self, repo: RepoRef, deletion_id: str) -> bool:
        with self._lock:
            if self.deleting.get(repo) != deletion_id:
                return False
            del self.deleting[repo]
            return True

    def by_seq(self, repo: RepoRef, seq: int) -> Job | None:
        """The repository's job with creation number ``seq`` (for the snapshot store fake)."""
        with self._lock:
            return next((j for j in self._jobs.values() if j.repo == repo and j.seq == seq), None)

    def drop_jobs(self, repo: RepoRef, limit: int) -> int:
        """Remove at most ``limit`` jobs of the repository; the number removed."""
        with self._lock:
            doomed = [k for k, j in self._jobs.items() if j.repo == repo][:limit]
            for key in doomed:
                del self._jobs[key]
                self._order.pop(key, None)
                self._touched.pop(key, None)
            return len(doomed)

    def discard(self, job_id: str) -> None:
        """Delete the job if it is still queued and never started; else nothing."""
        canonical = job_rows.parse_job_id(job_id) or ""
        with self._lock:
            job = self._jobs.get(canonical)
            if job is not None and job.status is JobStatus.QUEUED and job.started_at is None:
                del self._jobs[canonical]
                del self._order[canonical]
                del self._touched[canonical]

    def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        canonical = job_rows.parse_job_id(job_id)
        with self._lock:
            job = self._jobs.get(canonical or "")
        if job is None or (tenant is not None and job.repo.tenant != tenant):
            return None
        return job

    def list(
        self,
        tenant: str,
        repo: str | None = None,
        limit: int = 50,
        *,
        statuses: Collection[JobStatus] = (),
        offset: int = 0,
    ) -> builtins.list[Job]:
        wanted = {JobStatus(s) for s in statuses}
        with self._lock:
            mine = [
                j
                for j in self._jobs.values()
                if j.repo.tenant == tenant
                and (repo is None or j.repo.name == repo)
                and (not wanted or j.status in wanted)
            ]
            mine.sort(key=lambda j: (j.created_at, self._order[j.job_id]), reverse=True)
        start = max(0, offset)
        return mine[start : start + max(0, limit)]

    def idle(self, idle_s: float, limit: int = 100) -> builtins.list[Job]:
        horizon = self._clock() - max(0.0, idle_s)
        with self._lock:
            idle = [
                (self._touched[j.job_id], j.job_id)
                for j in self._jobs.values()
                if not j.status.terminal and self._touched[j.job_id] < horizon
            ]
            return [self._jobs[job_id] for _t, job_id in sorted(idle)[: max(0, limit)]]

    def start(self, job_id: str, stage: str, commit: str | None = None) -> bool:
        job_rows.check_stage(stage)
        if commit:
            job_rows.check_commit(commit)

        def started(job: Job) -> Job:
            return dataclasses.replace(
                job,
                status=JobStatus.RUNNING,
                stage=stage,
                started_at=job.started_at if job.started_at is not None else time.time(),
                commit=job.commit or commit or "",
            )

        return self._update(job_id, started, live_only=True)

    def set_stage(self, job_id: str, stage: str) -> None:
        job_rows.check_stage(stage)
        self._update(job_id, lambda job: dataclasses.replace(job, stage=stage), live_only=True)

    def save_progress(
        self, job_id: str, counters: Mapping[str, int], errors: Sequence[JobError] = ()
    ) -> None:
        counted = job_rows.check_counters(counters)
        added = tuple(job_rows.check_errors(errors))
        self._update(
            job_id,
            lambda job: dataclasses.replace(
                job, counters=counted, errors=(job.errors + added)[-MAX_ERRORS:]
            ),
        )

    def finish(self, job_id: str, status: JobStatus, message: str = "") -> bool:
        terminal = job_rows.check_terminal(status)
        sql.check_texts("job message", [message])

        def finished(job: Job) -> Job:
            stage = "done" if terminal is JobStatus.DONE else job.stage
            return dataclasses.replace(
                job, status=terminal, message=message, finished_at=time.time(), stage=stage
            )

        return self._update(job_id, finished, live_only=True)

    def set_snapshot(self, job_id: str, snapshot_id: int) -> None:
        self._update(job_id, lambda job: dataclasses.replace(job, snapshot_id=snapshot_id))

    def add_webhook(self, job_id: str, delivery: WebhookDelivery) -> None:
        job_rows.check_delivery(delivery)
        self._update(
            job_id,
            lambda job: dataclasses.replace(
                job, webhooks=(*job.webhooks, delivery)[-job_rows.MAX_WEBHOOKS :]
            ),
        )

    def _update(self, job_id: str, change: _Change, *, live_only: bool = False) -> bool:
        canonical = job_rows.parse_job_id(job_id) or ""
        with self._lock:
            job = self._jobs.get(canonical)
            if job is None or (live_only and job.status.terminal):
                return False
            self._jobs[canonical] = change(job)
            self._touched[canonical] = self._clock()
            return True

    def _existing(
        self,
        request: JobRequest,
        job_id: str,
        commit: str | None,
        ref_name: str,
        held: str | None = None,
    ) -> Job | None:
        key, repo = request.idempotency_key, request.repo
        if key is not None:
            for job in self._jobs.values():
                if job.repo.tenant == repo.tenant and job.idempotency_key == key:
                    return job
        if commit is not None and not request.reindex_paths:
            live = [
                j
                for j in self._jobs.values()
                if j.repo == repo
                and j.ref_name == ref_name
                and j.commit == commit
                and (j.status in _LIVE or (j.status is JobStatus.DONE and held == commit))
            ]
            if live:
                return max(live, key=lambda j: (j.status in _LIVE, self._order[j.job_id]))
        same = self._jobs.get(job_id)
        if same is not None and same.repo != repo:
            raise InvalidInputError(f"job id {job_id!r} is taken by a job of another repository")
        return same


_LIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


class InMemoryTokenStore:
    """Token records in a dict keyed by digest; ``clock`` gives epoch seconds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._tokens: dict[bytes, ApiToken] = {}
        self._tenants: set[str] = set()
        self._lock = threading.Lock()
        self._clock = clock

    def close(self) -> None:
        """Nothing to release; here for parity with the real store."""

    def create(self, tenant: str, label: str = "", scopes: Sequence[str] = SCOPES) -> str:
        return self.issue(tenant, label, scopes).token

    def issue(self, tenant: str, label: str = "", scopes: Sequence[str] = SCOPES) -> IssuedToken:
        check_tenant(tenant)
        job_rows.check_label(label)
        checked = check_scopes(scopes)
        token = job_rows.new_token()
        record = ApiToken(new_token_id(), tenant, label, checked, self._clock())
        with self._lock:
            self._tenants.add(tenant)
            self._tokens[job_rows.token_digest(token)] = record
        return IssuedToken(token, record)

    def register(self, tenant: str, token: str, label: str = "") -> None:
        job_rows.check_token(tenant, token)
        job_rows.check_label(label)
        record = ApiToken(new_token_id(), tenant, label, SCOPES, self._clock())
        with self._lock:
            held = self._tokens.setdefault(job_rows.token_digest(token), record)
            if held.tenant != tenant:
                raise InvalidInputError(
                    f"the token given for tenant {tenant!r} is already another tenant's"
                )
            self._tenants.add(tenant)

    def authenticate(self, token: str) -> str | None:
        grant = self.identify(token)
        return None if grant is None else grant.tenant

    def identify(self, token: str) -> TokenGrant | None:
        digest = job_rows.token_digest(token)
        now = self._clock()
        with self._lock:
            held = self._tokens.get(digest)
            if held is None or held.revoked_at is not None:
                return None
            last = held.last_used_at
            if last is None or now - last > LAST_USED_RESOLUTION_S:
                self._tokens[digest] = dataclasses.replace(held, last_used_at=now)
        return TokenGrant(held.tenant, held.token_id, frozenset(held.scopes))

    def revoke(self, token: str) -> bool:
        digest = job_rows.token_digest(token)
        with self._lock:
            held = self._tokens.get(digest)
            if held is None or held.revoked_at is not None:
                return False
            self._tokens[digest] = dataclasses.replace(held, revoked_at=self._clock())
            return True

    def revoke_id(self, token_id: str, tenant: str | None = None) -> ApiToken | None:
        with self._lock:
            for digest, held in self._tokens.items():
                if held.token_id == token_id and tenant in (None, held.tenant):
                    if held.revoked_at is not None:
                        return held
                    revoked = dataclasses.replace(held, revoked_at=self._clock())
                    self._tokens[digest] = revoked
                    return revoked
        return None

    def list_tokens(self, tenant: str | None = None) -> list[ApiToken]:
        if tenant is not None:
            check_tenant(tenant)
        with self._lock:
            found = [t for t in self._tokens.values() if tenant in (None, t.tenant)]
        # Newest first; insertion order breaks ties, as the real store's serial id does.
        return [t for _, t in sorted(enumerate(found), key=lambda p: (-p[1].created_at, -p[0]))]
