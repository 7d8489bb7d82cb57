"""A search fed by a learning-rate finder run: its suggestion sets the search's learning-rate range."""

from __future__ import annotations

import math
from typing import Any

from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.rules import learning_rate_range, with_learning_rate_range
from ..store.tags import LR_WARNING_TAG


def learning_rate_from_run(config: ExperimentConfig, client: Any) -> tuple[ExperimentConfig, dict[str, Any]]:
    """``config`` with the learning rate searched around the suggestion of run ``config.lr_from``,
    and what the parent run records about where the range came from."""
    run_id = config.lr_from
    try:
        run = client.get_run(run_id)
    except Exception:
        raise ConfigError("lr_from", f"no run '{run_id}' in the tracking store") from None
    suggested = run.data.metrics.get("suggested_lr")
    if suggested is None or not math.isfinite(suggested) or suggested <= 0:
        raise ConfigError("lr_from", f"run '{run_id}' is not a learning-rate finder run (no suggested_lr)")
    ranged = with_learning_rate_range(config, suggested)
    low, high = learning_rate_range(suggested)
    warning = run.data.tags.get(LR_WARNING_TAG)
    source = {
        "lr_from": run_id,
        "lr_from.suggested_lr": suggested,
        "lr_from.range": f"{low:.3g}..{high:.3g} (log-uniform)",
        "lr_from.min_learning_rate": ranged.fixed["min_learning_rate"],
        **({"lr_from.warning": warning} if warning else {}),
    }
    return ranged, source
