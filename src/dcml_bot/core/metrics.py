"""Prometheus metrics for one running bot (own registry: no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dcml_bot.core.delivery import DeliveryReport

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Outcomes every 15-minute tick reports again for most members; counting them is noise.
REPEATED_EVERY_TICK = frozenset({"not-due", "already", "missed"})


class Metrics:
    """Counters and histograms the HTTP service exposes at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter(
            "dcml_commands",
            "Commands handled, by platform and outcome.",
            ["platform", "outcome"],
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "dcml_command_seconds",
            "Time to answer a command, from request to reply.",
            ["platform"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.events = Counter(
            "dcml_events",
            "Inbound platform events, by platform, type and outcome.",
            ["platform", "type", "outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "dcml_deliveries",
            "Weekly delivery outcomes per member.",
            ["outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "dcml_errors",
            "Errors by where they happened.",
            ["where"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "dcml_rejected_requests",
            "Inbound requests refused (bad signature, stale, malformed), by platform and reason.",
            ["platform", "reason"],
            registry=self.registry,
        )
        self.catalog_items = Gauge(
            "dcml_catalog_items", "Items in the catalog being served.", registry=self.registry
        )

    def record_report(self, report: DeliveryReport) -> None:
        """Count a delivery run's outcomes (not the members merely checked again each tick)."""
        for outcome, count in report.outcomes.items():
            if outcome not in REPEATED_EVERY_TICK:
                self.deliveries.labels(outcome).inc(count)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
