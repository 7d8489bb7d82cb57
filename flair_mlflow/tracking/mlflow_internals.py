"""MLflow beyond its public API, in one module so that a test catches each use MLflow changes."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request, verify_rest_response

#: no retry for the probe alone (urllib3 would print a line for each)
PROBE_RETRIES = {"max_retries": 0, "backoff_factor": 1, "timeout": 10}
PROBE_ENDPOINT = "/api/2.0/mlflow/experiments/search"


def probe_server(tracking_uri: str) -> None:
    """One request, no retries (MLflow's client sets those only by environment variables); raises what MLflow raises."""
    credentials = get_default_host_creds(tracking_uri)
    response = http_request(credentials, PROBE_ENDPOINT, "POST", json={"max_results": 1}, **PROBE_RETRIES)
    verify_rest_response(response, PROBE_ENDPOINT)


def delete_artifacts(artifact_uri: str) -> None:
    """Remove the files under ``artifact_uri`` (a deleted logged model's), as ``mlflow gc`` does."""
    get_artifact_repository(artifact_uri).delete_artifacts()


@contextmanager
def system_metrics(run_id: str, tracking_uri: str, enabled: bool) -> Iterator[None]:
    """MLflow's system metrics (``system/cpu_utilization_percentage``, ...) logged to ``run_id`` meanwhile."""
    if not enabled:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, tracking_uri=tracking_uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()  # the monitor drops its last, partial interval: a short trial would have none
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
