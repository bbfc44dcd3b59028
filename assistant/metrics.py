"""Prometheus metrics and a health check, served on METRICS_HOST:METRICS_PORT when the port is set.

Counters come from small hooks: the core's `handled_listeners`,
`answered_listeners` and `unanswered_listeners`, and an adapter wrapper that times
every outbox send (the sender calls `adapter.send`, so wrapping the adapters it is
given observes each send without touching it). Outbox rows per status are counted
in the database at scrape time, so every worker reports the shared queue.
Nothing here records who wrote or what: labels are platforms, languages and outcomes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from sqlalchemy import text

from .messages import Reply
from .platform import Adapter, OnMessage
from .store.outbox import Outbox

if TYPE_CHECKING:
    from .core import Assistant
    from .store.db import Database

logger = logging.getLogger(__name__)

# Seconds per send: a Bot API call takes 50-300 ms; a 429 or a slow homeserver much longer.
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The assistant's metrics in a registry of their own (tests make as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.handled = Counter("assistant_messages_handled", "Messages the core handled",
                               ["platform"], registry=self.registry)
        self.answered = Counter("assistant_questions_answered",
                                "Questions answered from the knowledge base", ["language"],
                                registry=self.registry)
        self.unanswered = Counter("assistant_questions_unanswered",
                                  "Questions no topic answered", ["language"],
                                  registry=self.registry)
        self.send_seconds = Histogram("assistant_outbox_send_seconds",
                                      "Time of one outbox send, by platform and outcome",
                                      ["platform", "outcome"], buckets=SEND_BUCKETS,
                                      registry=self.registry)

    def attach(self, assistant: "Assistant") -> None:
        """Count what the core handles and answers."""
        assistant.handled_listeners.append(lambda incoming: self.handled.labels(
            incoming.platform).inc())
        assistant.answered_listeners.append(lambda _topic, language: self.answered.labels(
            language).inc())
        assistant.unanswered_listeners.append(lambda _text, language: self.unanswered.labels(
            language).inc())

    def watch_outbox(self, outbox: Outbox) -> None:
        """Report the outbox's rows per status, counted at each scrape."""
        self.registry.register(OutboxCollector(outbox))

    def timed(self, adapter: Adapter) -> Adapter:
        """The adapter, with each send timed into `send_seconds`."""
        return TimedAdapter(adapter, self.send_seconds)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition text and its content type, as the scraper asked (Accept header)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class OutboxCollector:
    """A gauge per outbox status; a failed count is logged and reported as absent."""

    def __init__(self, outbox: Outbox):
        self.outbox = outbox

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("assistant_outbox_rows", "Outbox rows per status",
                                  labels=["status"])
        try:
            counts = self.outbox.counts()
        except Exception:
            logger.exception("counting outbox rows for metrics failed")
            return
        for status, count in counts.items():
            gauge.add_metric([status], count)
        yield gauge


class TimedAdapter:
    """Passes everything to the adapter; `send` is timed, its outcome named by exception class."""

    def __init__(self, adapter: Adapter, histogram: Histogram):
        self.adapter, self.histogram = adapter, histogram
        self.platform = adapter.platform

    async def start(self, on_message: OnMessage) -> None:
        await self.adapter.start(on_message)

    async def stop(self) -> None:
        await self.adapter.stop()

    async def send(self, chat_id: str, reply: Reply) -> str:
        started, outcome = time.perf_counter(), "sent"
        try:
            return await self.adapter.send(chat_id, reply)
        except BaseException as error:
            outcome = type(error).__name__
            raise
        finally:
            self.histogram.labels(self.platform, outcome).observe(time.perf_counter() - started)


# the HTTP endpoints ---------------------------------------------------------------

async def serve(metrics: Metrics, db: "Database", host: str, port: int) -> web.AppRunner:
    """Start `/metrics` and `/healthz` on host:port; `await runner.cleanup()` stops them."""
    app = web.Application()
    app.router.add_get("/metrics", lambda request: _metrics(metrics, request))
    app.router.add_get("/healthz", lambda request: _health(db))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    logger.info("metrics on http://%s:%s/metrics", host, port)
    return runner


async def _metrics(metrics: Metrics, request: web.Request) -> web.Response:
    # Counting the outbox queries the database: off the event loop.
    body, content_type = await asyncio.to_thread(metrics.render,
                                                 request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _health(db: "Database") -> web.Response:
    """200 when the database answers, 503 otherwise (for a load balancer or systemd)."""
    try:
        await asyncio.to_thread(_ping, db)
    except Exception as error:
        logger.warning("health check: database unreachable (%s)", type(error).__name__)
        return web.json_response({"status": "unhealthy", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok"})


def _ping(db: "Database") -> None:
    with db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
