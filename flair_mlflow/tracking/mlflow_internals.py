"""The one use of MLflow beyond its public API, kept here with a test that fails when MLflow changes it.

A probe of a tracking server must fail in seconds on a mistyped URI: the client's own calls retry for
minutes (right for a running search's writes, which must outlast a server restart), and the public API
sets the retries only through environment variables, which a library must not change.
"""

from __future__ import annotations

from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request, verify_rest_response

#: no retry for the probe alone (urllib3 would print a line for each)
PROBE_RETRIES = {"max_retries": 0, "backoff_factor": 1, "timeout": 10}
PROBE_ENDPOINT = "/api/2.0/mlflow/experiments/search"


def probe_server(tracking_uri: str) -> None:
    """One request to the server at ``tracking_uri``, with its credentials; raises what MLflow raises."""
    response = http_request(
        get_default_host_creds(tracking_uri), PROBE_ENDPOINT, "POST", json={"max_results": 1}, **PROBE_RETRIES
    )
    verify_rest_response(response, PROBE_ENDPOINT)
