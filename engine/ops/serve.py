"""``GET /metrics`` (the Prometheus text format) and ``GET /healthz`` from any animabot process.

prometheus-client's WSGI app on a threading server of its own, in a daemon thread: a scrape never
waits on the event loop, and a collector that reads the store (``bot.ops``) hands its query to
the loop and waits for it on the scrape's thread. ``/healthz`` answers ``ok`` while the process
runs. :func:`parse_listen` reads ``HOST:PORT``; :func:`serve_metrics` turns a port in use into one
``UserError`` sentence (the command line prints it and exits 2).
"""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from engine.errors import UserError

log = logging.getLogger(__name__)


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` → ``("127.0.0.1", 9464)``; ``[::1]:9464`` for IPv6 (``UserError`` otherwise)."""
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"metrics listen address {text!r} is not HOST:PORT; write it like 127.0.0.1:9464.")
    return host, int(port)


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format, *args) -> None:
        pass


def _app(registry):
    metrics = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path == "/metrics":
            return metrics(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"/metrics or /healthz\n"]

    return app


@dataclass(eq=False)
class MetricsServer:
    """A serving endpoint; :meth:`close` stops it."""

    host: str
    port: int
    _server: ThreadingWSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(listen: str, registry=REGISTRY) -> MetricsServer:
    """Serve ``/metrics`` and ``/healthz`` at ``listen`` (``HOST:PORT``; port 0 picks a free one)."""
    host, port = parse_listen(listen)
    try:
        server = make_server(host, port, _app(registry), ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UserError(
                f"the metrics port {listen} is in use; stop what holds it or pick another with --metrics-listen."
            ) from None
        raise UserError(
            f"cannot serve metrics on {listen} ({err.strerror}); pick another with --metrics-listen."
        ) from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="animabot-metrics", daemon=True)
    thread.start()
    bound = server.server_address[1]
    log.info("serving /metrics and /healthz on %s:%d", host, bound)
    return MetricsServer(host, bound, server, thread)
