"""Push webhooks: a tenant registers a hook for one of its repositories (``hooks``), and
GitHub or GitLab push events to its URL are verified and read (``events``) into a ref to
index at a commit, or a ref to delete.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""
