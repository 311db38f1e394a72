"""Uploaded archives where every host reaches them: the ``upload:<id>`` source locations.

``POST /v1/jobs/archive`` streams the request body into an
:class:`~pipeline.ports.UploadStore` in parts of :data:`PART_BYTES` and enqueues a job
whose source is an ARCHIVE at ``upload:<id>``; the ingest worker, on any host, reads the
parts back into its scratch folder and extracts them there. Such a location is made by
the API only: a client's ``upload:...`` string parses as an scp-like git URL, never as
an archive, and the fetcher checks that the upload belongs to the job's tenant.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import uuid

from pipeline.errors import InvalidInputError

UPLOAD_PREFIX = "upload:"
PART_BYTES = 4 * 2**20
COLLECT_GRACE_S = 86_400.0  # an upload no queued or running job names goes after a day
COLLECT_LIMIT = 1_000


def upload_location(upload_id: str) -> str:
    return UPLOAD_PREFIX + upload_id


def upload_id_of(location: str) -> str | None:
    """The upload id of an ``upload:<id>`` location (None for any other location);
    InvalidInputError when the id is not a UUID."""
    if not location.startswith(UPLOAD_PREFIX):
        return None
    text = location[len(UPLOAD_PREFIX) :]
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidInputError(f"archive source {location!r}: not an upload id") from None
