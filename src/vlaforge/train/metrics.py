"""Training metrics to the log, a JSONL file in the output, and Prometheus.

Prometheus: an HTTP endpoint when ``VLAFORGE_METRICS_PORT`` is set (a long-running service), and a
push to a Pushgateway at the end of every log interval when ``PUSHGATEWAY_URL`` is set (batch pods).
"""

from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, start_http_server

from vlaforge import storage, strict_json

log = logging.getLogger(__name__)
GAUGES = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "lr": "learning rate",
    "tokens_per_s": "training tokens per second",
    "samples_per_s": "training samples per second",
    "step_time_s": "seconds per optimizer step",
    "data_wait_s": "seconds per step spent waiting for data",
    "step": "optimizer step",
}


class MetricsLogger:
    def __init__(self, stage: str, out_uri: str | None, enabled: bool = True):
        self.stage = stage
        self.enabled = enabled
        self.out_uri = out_uri
        self.history: list[dict] = []
        self.registry = CollectorRegistry()
        self.gauges = {k: Gauge(f"vlaforge_train_{k}", doc, ["stage"], registry=self.registry)
                       for k, doc in GAUGES.items()}
        self.pushgateway = os.environ.get("PUSHGATEWAY_URL")
        port = os.environ.get("VLAFORGE_METRICS_PORT")
        if enabled and port:
            start_http_server(int(port), registry=self.registry)
            log.info("Prometheus metrics on :%s/metrics", port)

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: float(v) for k, v in values.items()}}
        self.history.append(record)
        for key, value in record.items():
            if key in self.gauges:
                self.gauges[key].labels(self.stage).set(value)
        log.info("%s step %d | %s", self.stage, step,
                 " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "step"))
        if self.pushgateway:
            try:
                push_to_gateway(self.pushgateway, job=f"vlaforge-{self.stage}", registry=self.registry)
            except OSError as err:  # monitoring must never stop training
                log.warning("Pushgateway %s unreachable: %s", self.pushgateway, err)

    def flush(self) -> None:
        if self.enabled and self.out_uri:
            storage.write_text(storage.join(self.out_uri, "metrics.jsonl"),
                               "".join(strict_json.dumps(r) + "\n" for r in self.history))

    def restore(self, history: list[dict]) -> None:
        self.history = list(history)
