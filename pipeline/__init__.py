"""The domain: values, errors, ports, pure logic. Never imports celery, tasks, workers, api."""
