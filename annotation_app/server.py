"""Production serving: gunicorn, several worker processes of several threads each.

Each worker builds its own app after the fork (its own database engine and caches); what
must agree across processes lives in the database: planning locks the campaign row, an
answer locks its sitting's row, login sessions and lockouts are rows. Put a reverse proxy
(nginx, Caddy) in front for TLS and slow clients, and start with ``--secure-cookies
--proxy-count 1`` behind it.
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    """gunicorn's embedding API: options in, a fresh app per worker."""

    def __init__(self, config: dict, options: dict) -> None:
        self.app_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from annotation_app import create_app

        return create_app(self.app_config)


def run(config: dict, host: str, port: int, workers: int, threads: int) -> None:
    """Serve the app configured by ``config`` until interrupted."""
    _Gunicorn(
        config,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": 60,
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
        },
    ).run()
