"""The gunicorn worker class of scripts/serve: uvicorn, without naming itself."""

from uvicorn_worker import UvicornWorker


class QuietUvicornWorker(UvicornWorker):
    """uvicorn's worker without its `Server: uvicorn` header: answers don't advertise the
    server software and its version to whoever probes for known flaws."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "server_header": False}
