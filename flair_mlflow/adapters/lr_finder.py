"""Learning-rate range test (Leslie Smith) for Flair models, with MLflow logging.

Flair removed ``ModelTrainer.find_learning_rate``; this brings it back with the faults
of the old version fixed:

* each row records the learning rate that was actually used for that batch (the old
  version wrote the scheduler's *next* rate);
* the loss is divided by the number of data points, so batches of different size and
  models with different loss reductions are comparable;
* model *and* optimizer state are restored from deep copies (the old snapshot shared
  storage with the live weights, so "restoring" was a no-op);
* it suggests a learning rate and says when the curve is not fit to suggest from.

Only flair, torch, numpy, matplotlib, mlflow and the standard library are imported here,
so the rest of the package can import this module without cycles.
"""

from __future__ import annotations

import copy
import csv
import datetime
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import flair
import numpy as np
import torch
from flair.datasets import DataLoader
from flair.training_utils import store_embeddings

log = logging.getLogger("flair")

__all__ = [
    "LRCurve",
    "LRSuggestion",
    "Plotter",
    "find_learning_rate",
    "log_lr_find_to_mlflow",
    "read_learning_rate_tsv",
    "suggest_learning_rates",
    "SUGGESTION_FILE_NAME",
    "TSV_COLUMNS",
]

# The first four names are what Flair's own Plotter.plot_learning_rate looks up (by name),
# so they must stay; TRAIN_LOSS holds the smoothed loss because that is the only curve
# whose shape can be read by eye. RAW_LOSS / SMOOTHED_LOSS name both unambiguously.
TSV_COLUMNS = ("ITERATION", "TIMESTAMP", "LEARNING_RATE", "TRAIN_LOSS", "RAW_LOSS", "SMOOTHED_LOSS")
SUGGESTION_FILE_NAME = "learning_rate_suggestion.json"

# MLflow accepts at most 1000 metrics per log_batch call.
_MLFLOW_METRICS_PER_BATCH = 1000
_MLFLOW_PARAMS_PER_BATCH = 100
_MLFLOW_PARAM_VALUE_LIMIT = 6000


# --------------------------------------------------------------------------------------
# state snapshot / restore
# --------------------------------------------------------------------------------------


class _TrainingSnapshot:
    """Deep copies of everything the range test mutates, so it leaves no trace.

    Parameters and buffers are cloned (not ``state_dict()`` references, which alias the
    live tensors) and written back in place with ``copy_`` so that an optimizer holding
    the parameter objects keeps pointing at the right tensors.
    """

    def __init__(self, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer]) -> None:
        self.model = model
        self.optimizer = optimizer
        self.tensors: list[tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]] = []
        seen: set[int] = set()
        extra_params: list[torch.Tensor] = []
        if optimizer is not None:
            # parameters the optimizer updates but the model does not own would otherwise
            # be left changed
            extra_params = [p for group in optimizer.param_groups for p in group["params"]]
        for tensor in [*model.parameters(), *model.buffers(), *extra_params]:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            grad = tensor.grad.detach().clone() if tensor.grad is not None else None
            self.tensors.append((tensor, tensor.detach().clone(), grad))
        self.training_flags = [(module, module.training) for module in model.modules()]
        self.optimizer_state = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
        self.torch_rng = torch.get_rng_state()
        cuda_in_use = torch.cuda.is_available() and torch.cuda.is_initialized()
        self.cuda_rng = torch.cuda.get_rng_state_all() if cuda_in_use else None
        self.python_rng = random.getstate()
        self.numpy_rng = np.random.get_state()

    def restore(self) -> None:
        with torch.no_grad():
            for tensor, value, grad in self.tensors:
                tensor.copy_(value)
                if grad is None:
                    tensor.grad = None
                else:
                    tensor.grad = grad
        for module, flag in self.training_flags:
            module.training = flag
        if self.optimizer is not None and self.optimizer_state is not None:
            # load a copy so the snapshot itself never becomes live optimizer state
            self.optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)


# --------------------------------------------------------------------------------------
# range test
# --------------------------------------------------------------------------------------


def _cycle_batches(dataset, mini_batch_size: int) -> Iterator[list]:
    """Endless shuffled batches; a fresh DataLoader per epoch reshuffles with torch's RNG."""
    while True:
        produced = False
        for batch in DataLoader(dataset, batch_size=mini_batch_size, shuffle=True):
            produced = True
            yield batch
        if not produced:
            raise ValueError("the training split is empty")


def _set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(learning_rate)
        else:
            group["lr"] = learning_rate


def _loss_and_count(result: Any) -> tuple[torch.Tensor, int]:
    """Flair models return ``(loss_sum, count)``; some custom models return the loss only."""
    if isinstance(result, tuple):
        loss, count = result[0], result[1]
    else:
        loss, count = result, 1
    count = int(count.item() if isinstance(count, torch.Tensor) else count)
    return loss, count


def find_learning_rate(
    trainer: "flair.trainers.ModelTrainer",
    base_path: Union[str, Path],
    optimizer: Union[type[torch.optim.Optimizer], torch.optim.Optimizer] = torch.optim.SGD,
    start_learning_rate: float = 1e-7,
    end_learning_rate: float = 10.0,
    iterations: int = 100,
    mini_batch_size: int = 32,
    stop_early: bool = True,
    smoothing_factor: float = 0.98,
    divergence_threshold: float = 4.0,
    file_name: str = "learning_rate.tsv",
    max_grad_norm: Optional[float] = 5.0,
    **optimizer_kwargs: Any,
) -> Path:
    """Run the LR range test on ``trainer.corpus.train`` and write ``base_path/file_name``.

    The learning rate grows exponentially from ``start_learning_rate`` (first batch) to
    ``end_learning_rate`` (last batch). Each batch is trained the way Flair's trainer does
    it (backward on the summed loss, gradient clipping at ``max_grad_norm``), so the rate
    found transfers to ``ModelTrainer.train``; the *recorded* loss is per data point.

    ``optimizer`` is either an optimizer class (built over the model's parameters with
    ``optimizer_kwargs``) or an optimizer instance, whose state is restored afterwards.
    Model weights, gradients, train/eval modes and the torch/python/numpy RNG states are
    restored too, so running the test changes nothing about later training.

    A suggestion (see :func:`suggest_learning_rates`) is written next to the TSV as
    ``learning_rate_suggestion.json``. Returns the path of the TSV.
    """
    if not 0 < start_learning_rate < end_learning_rate:
        raise ValueError("need 0 < start_learning_rate < end_learning_rate")
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    if mini_batch_size < 1:
        raise ValueError("mini_batch_size must be >= 1")
    if not 0 <= smoothing_factor < 1:
        raise ValueError("smoothing_factor must be in [0, 1)")
    train_data = trainer.corpus.train
    if train_data is None or len(train_data) == 0:
        raise ValueError("the trainer's corpus has no training data")

    model: torch.nn.Module = trainer.model
    if isinstance(optimizer, torch.optim.Optimizer):
        if optimizer_kwargs:
            raise TypeError("optimizer_kwargs only apply when optimizer is a class, not an instance")
        optimizer_instance = optimizer
        owned_optimizer = False
    elif isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        optimizer_instance = None
        owned_optimizer = True
    else:
        raise TypeError(f"optimizer must be a torch optimizer class or instance, got {optimizer!r}")

    base_path = Path(base_path)
    base_path.mkdir(parents=True, exist_ok=True)
    tsv_path = base_path / file_name

    # snapshot before building our own optimizer: a fresh optimizer is simply discarded
    snapshot = _TrainingSnapshot(model, optimizer_instance)
    if owned_optimizer:
        optimizer_instance = optimizer(model.parameters(), lr=start_learning_rate, **optimizer_kwargs)
    assert optimizer_instance is not None

    ratio = end_learning_rate / start_learning_rate
    learning_rates: list[float] = []
    smoothed_losses: list[float] = []
    stopped_reason: Optional[str] = None
    moving_average = 0.0
    best_smoothed = math.inf

    try:
        model.train()
        batches = _cycle_batches(train_data, mini_batch_size)
        with open(tsv_path, "w", encoding="utf-8") as tsv:
            tsv.write("\t".join(TSV_COLUMNS) + "\n")
            for step in range(iterations):
                fraction = step / (iterations - 1) if iterations > 1 else 0.0
                learning_rate = start_learning_rate * ratio**fraction
                _set_learning_rate(optimizer_instance, learning_rate)

                batch = next(batches)
                model.zero_grad()
                optimizer_instance.zero_grad()
                loss_sum, count = _loss_and_count(model.forward_loss(batch))
                loss_sum.backward()
                if max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimizer_instance.step()
                store_embeddings(batch, "none")

                raw = loss_sum.item() / max(count, 1)
                moving_average = smoothing_factor * moving_average + (1 - smoothing_factor) * raw
                smoothed = moving_average / (1 - smoothing_factor ** (step + 1))
                learning_rates.append(learning_rate)
                smoothed_losses.append(smoothed)

                now = f"{datetime.datetime.now():%H:%M:%S}"
                # TRAIN_LOSS (for Flair's plotter), RAW_LOSS, SMOOTHED_LOSS
                tsv.write(f"{step}\t{now}\t{learning_rate!r}\t{smoothed!r}\t{raw!r}\t{smoothed!r}\n")

                if math.isfinite(smoothed):
                    best_smoothed = min(best_smoothed, smoothed)
                if stop_early:
                    if not math.isfinite(smoothed):
                        stopped_reason = f"loss is {smoothed} at learning rate {learning_rate:.3e}"
                    elif best_smoothed > 0 and smoothed > divergence_threshold * best_smoothed:
                        stopped_reason = (
                            f"smoothed loss {smoothed:.4g} > {divergence_threshold} x best {best_smoothed:.4g} "
                            f"at learning rate {learning_rate:.3e}"
                        )
                    if stopped_reason is not None:
                        log.info(f"LR finder: loss diverged, stopped after {step + 1} iterations ({stopped_reason})")
                        break
    finally:
        snapshot.restore()
        del optimizer_instance  # drop our own optimizer's state before returning

    suggestion = suggest_learning_rates(learning_rates, smoothed_losses, divergence_threshold=divergence_threshold)
    summary = {
        "suggestion": asdict(suggestion),
        "rows": len(learning_rates),
        "stopped_early": stopped_reason is not None,
        "stopped_reason": stopped_reason,
        "settings": {
            "optimizer": (optimizer if isinstance(optimizer, type) else type(optimizer)).__name__,
            "start_learning_rate": start_learning_rate,
            "end_learning_rate": end_learning_rate,
            "iterations": iterations,
            "mini_batch_size": mini_batch_size,
            "smoothing_factor": smoothing_factor,
            "divergence_threshold": divergence_threshold,
            "max_grad_norm": max_grad_norm,
            "optimizer_kwargs": {k: repr(v) for k, v in optimizer_kwargs.items()},
        },
    }
    (base_path / SUGGESTION_FILE_NAME).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    log.info(f"LR finder: curve written to {tsv_path}; suggested learning rate {suggestion.suggested_lr:.3e}")
    if suggestion.warning:
        log.warning(f"LR finder: {suggestion.warning}")
    return tsv_path


# --------------------------------------------------------------------------------------
# reading the curve
# --------------------------------------------------------------------------------------


@dataclass
class LRCurve:
    """The range-test curve as read back from the TSV."""

    iterations: list[int]
    learning_rates: list[float]
    losses: list[float]
    smoothed_losses: list[float]


def read_learning_rate_tsv(tsv_path: Union[str, Path]) -> LRCurve:
    """Read by column name so the TSV stays readable if columns are appended later.

    Files from Flair's old finder (no RAW/SMOOTHED columns) are accepted: TRAIN_LOSS then
    stands in for both.
    """
    iterations, lrs, raw, smoothed = [], [], [], []
    with open(tsv_path, encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        raw_col = col.get("RAW_LOSS", col["TRAIN_LOSS"])
        smooth_col = col.get("SMOOTHED_LOSS", col["TRAIN_LOSS"])
        for row in reader:
            if not row:
                continue
            iterations.append(int(row[col["ITERATION"]]))
            lrs.append(float(row[col["LEARNING_RATE"]]))
            raw.append(float(row[raw_col]))
            smoothed.append(float(row[smooth_col]))
    return LRCurve(iterations, lrs, raw, smoothed)


# --------------------------------------------------------------------------------------
# suggestions
# --------------------------------------------------------------------------------------


@dataclass
class LRSuggestion:
    """Learning rates read off the curve; ``warning`` says when not to trust them."""

    suggested_lr: float
    steepest: Optional[float]
    valley: Optional[float]
    minimum_div_10: Optional[float]
    default_rule: str
    warning: Optional[str] = None


MIN_POINTS = 10
MIN_RELATIVE_DROP = 0.05


def _valley_index(losses: np.ndarray) -> Optional[int]:
    """fastai's valley rule: longest (not necessarily contiguous) decreasing run, its middle.

    fastai takes ``start + len/3 + len/6`` of the span, i.e. half-way down the valley: far
    enough from the plateau to learn quickly, far enough from the minimum to be stable.
    """
    n = len(losses)
    if n < 2:
        return None
    lds = np.ones(n, dtype=np.int64)
    max_start = max_end = 0
    for i in range(1, n):
        earlier_higher = losses[:i] > losses[i]
        if earlier_higher.any():
            lds[i] = lds[:i][earlier_higher].max() + 1
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max(0, max_end - int(lds[max_end]))
    if lds[max_end] < 2:
        return None
    sections = (max_end - max_start) / 3
    return min(n - 1, max_start + int(sections) + int(sections / 2))


def _steepest_index(learning_rates: np.ndarray, losses: np.ndarray) -> Optional[int]:
    """Most negative d(loss)/d(log lr): where the loss falls fastest per factor of rate."""
    if len(losses) < 2:
        return None
    log_lr = np.log(learning_rates)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (losses[1:] - losses[:-1]) / (log_lr[1:] - log_lr[:-1])
    slope = np.where(np.isfinite(slope), slope, np.inf)
    idx = int(np.argmin(slope))
    if not slope[idx] < 0:
        return None
    return idx


def suggest_learning_rates(
    learning_rates: Sequence[float],
    losses_smoothed: Sequence[float],
    *,
    divergence_threshold: float = 4.0,
    skip_first: Optional[int] = None,
    skip_last: int = 5,
) -> LRSuggestion:
    """Suggest learning rates from a range-test curve, flagging curves that can't support one.

    Rules (as in fastai): *valley* (default), *steepest* (fallback), *minimum/10*. Like
    fastai the first 10% and last ``skip_last`` points are ignored when the curve is long
    enough, because the bias-corrected average is shaky at the start and the end is the
    blow-up. Non-finite losses are dropped. A curve that is too short, never drops by at
    least 5%, or rises from its first points still gets a ``suggested_lr`` (from the best
    rule available) but carries a ``warning``.
    """
    lrs = np.asarray(learning_rates, dtype=np.float64)
    losses = np.asarray(losses_smoothed, dtype=np.float64)
    if lrs.shape != losses.shape or lrs.ndim != 1:
        raise ValueError("learning_rates and losses_smoothed must be 1-D and of equal length")
    if len(lrs) == 0:
        raise ValueError("the curve is empty")

    finite = np.isfinite(losses) & np.isfinite(lrs) & (lrs > 0)
    had_non_finite = not bool(finite.all())
    f_lrs, f_losses = lrs[finite], losses[finite]
    n = len(f_losses)

    warnings: list[str] = []
    if n == 0:
        return LRSuggestion(
            suggested_lr=float(lrs[0]),
            steepest=None,
            valley=None,
            minimum_div_10=None,
            default_rule="start_learning_rate",
            warning="the loss was not finite from the first iteration: the model diverged at once; "
            "lower start_learning_rate (the start rate is returned only as a placeholder)",
        )

    # trim like fastai, but never so much that too little is left to judge
    first = n // 10 if skip_first is None else skip_first
    last = skip_last
    if n - first - last >= MIN_POINTS:
        t_lrs, t_losses = f_lrs[first : n - last], f_losses[first : n - last]
    else:
        t_lrs, t_losses = f_lrs, f_losses

    # judge the shape on the trimmed curve: its first point is a single batch's loss
    min_idx = int(np.argmin(t_losses))
    min_loss = float(t_losses[min_idx])
    start_loss = float(t_losses[0])
    relative_drop = (start_loss - min_loss) / abs(start_loss) if start_loss != 0 else 0.0
    lowest = float(f_losses.min())
    diverged = had_non_finite or (lowest > 0 and float(f_losses[-1]) > divergence_threshold * lowest)
    early = max(2, len(t_losses) // 10)

    if n < MIN_POINTS:
        warnings.append(f"the curve is too short ({n} finite points, want at least {MIN_POINTS}); run more iterations")
    if diverged and min_idx < early:
        warnings.append(
            f"the loss diverged at once (lowest loss at point {min_idx} of {len(t_losses)}); lower start_learning_rate"
        )
    elif relative_drop < MIN_RELATIVE_DROP:
        warnings.append(
            f"no descent: the smoothed loss never dropped meaningfully ({relative_drop:.1%} below its start); "
            "raise end_learning_rate or iterations, or check the model and data"
        )

    valley_idx = _valley_index(t_losses)
    steep_idx = _steepest_index(t_lrs, t_losses)
    valley = float(t_lrs[valley_idx]) if valley_idx is not None else None
    steepest = float(t_lrs[steep_idx]) if steep_idx is not None else None
    minimum_div_10 = float(t_lrs[min_idx]) / 10.0

    if not diverged and min_idx >= len(t_losses) - 2 and relative_drop >= MIN_RELATIVE_DROP:
        warnings.append(
            "the loss was still falling at the end of the range: the curve has no minimum yet; "
            "raise end_learning_rate or iterations"
        )
    # the valley and the steepest descent sit close on a clean curve; far apart, the curve is unclear
    if valley and steepest and max(valley, steepest) / min(valley, steepest) > 30:
        warnings.append(
            f"the valley ({valley:.2g}) and steepest-descent ({steepest:.2g}) rules disagree by "
            f"{max(valley, steepest) / min(valley, steepest):.0f}x; read the plot"
        )

    if valley is not None:
        suggested, rule = valley, "valley"
    elif steepest is not None:
        suggested, rule = steepest, "steepest"
    else:
        suggested, rule = minimum_div_10, "minimum_div_10"

    return LRSuggestion(
        suggested_lr=suggested,
        steepest=steepest,
        valley=valley,
        minimum_div_10=minimum_div_10,
        default_rule=rule,
        warning="; ".join(warnings) if warnings else None,
    )


# --------------------------------------------------------------------------------------
# plotting
# --------------------------------------------------------------------------------------


class Plotter:
    """Plots the range-test curve without touching pyplot's global state.

    Flair's ``Plotter.plot_learning_rate`` goes through pyplot and calls
    ``plt.show(block=True)``, which blocks on an interactive backend; this one draws on
    an Agg canvas only, so it is safe in servers, notebooks and tests.
    """

    def plot_learning_rate(
        self,
        file_name: Union[str, Path],
        skip_first: int = 10,
        skip_last: int = 5,
        suggestion: Optional[LRSuggestion] = None,
    ) -> Path:
        """Write ``learning_rate.png`` next to the TSV and return its path.

        If skipping would leave fewer than two points (a short or early-stopped run) the
        whole curve is drawn instead of an empty axis.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import LogLocator

        file_name = Path(file_name)
        curve = read_learning_rate_tsv(file_name)
        if suggestion is None and curve.learning_rates:
            suggestion = suggest_learning_rates(curve.learning_rates, curve.smoothed_losses)

        n = len(curve.learning_rates)
        end = n - skip_last if skip_last > 0 else n
        if end - skip_first >= 2:
            sl = slice(skip_first, end)
        else:
            sl = slice(0, n)
        lrs = curve.learning_rates[sl]
        raw = curve.losses[sl]
        smoothed = curve.smoothed_losses[sl]

        fig = Figure(figsize=(8, 5), dpi=150)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(lrs, raw, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
        ax.plot(lrs, smoothed, color="tab:blue", linewidth=2, label="smoothed loss")
        if suggestion is not None:
            ax.axvline(
                suggestion.suggested_lr,
                color="tab:red",
                linestyle="--",
                label=f"suggested lr {suggestion.suggested_lr:.2e} ({suggestion.default_rule})",
            )
            if suggestion.warning:
                ax.set_title("warning: " + suggestion.warning, fontsize=7, color="tab:red", wrap=True)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        finite = [v for v in smoothed if math.isfinite(v)]
        if finite:
            # scale to the smoothed curve: raw spikes would otherwise squash it flat
            low, high = min(finite), max(finite)
            finite_raw = [v for v in raw if math.isfinite(v)]
            low = min([low, *finite_raw]) if finite_raw else low
            pad = 0.05 * (high - low) if high > low else max(abs(high) * 0.05, 1e-3)
            ax.set_ylim(low - pad, high + pad)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss per data point")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()

        path = file_name.parent / "learning_rate.png"
        fig.savefig(path, format="png")
        fig.clear()
        del fig
        log.info(f"Learning rate plot saved to {path}")
        return path


# --------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------


def _flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """MLflow params are flat strings of bounded length; nested configs become dotted keys."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten_params(value, prefix=f"{name}."))
        else:
            text = getattr(value, "__name__", None) if isinstance(value, type) else None
            text = text if text is not None else str(value)
            flat[name] = text[:_MLFLOW_PARAM_VALUE_LIMIT]
    return flat


def log_lr_find_to_mlflow(
    tsv_path: Union[str, Path],
    suggestion: Optional[LRSuggestion],
    png_path: Optional[Union[str, Path]],
    params: Optional[Mapping[str, Any]] = None,
    run_id: Optional[str] = None,
    client: Optional["mlflow.MlflowClient"] = None,  # type: ignore[name-defined]  # noqa: F821
) -> str:
    """Log a range test to an MLflow run (``run_id`` or the active fluent run); returns the run id.

    The curve goes in through ``log_batch`` in chunks of 1000 points: the tracking store
    costs several milliseconds per call, so one ``log_metric`` per point would dominate a
    long run. ``suggestion=None`` recomputes it from the TSV.
    """
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    tsv_path = Path(tsv_path)
    if client is None:
        client = mlflow.MlflowClient()
    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise ValueError("no run_id given and no active MLflow run")
        run_id = active.info.run_id

    curve = read_learning_rate_tsv(tsv_path)
    if suggestion is None:
        suggestion = suggest_learning_rates(curve.learning_rates, curve.smoothed_losses)

    timestamp = int(time.time() * 1000)
    metrics: list[Metric] = []
    for step, lr, loss, smoothed in zip(curve.iterations, curve.learning_rates, curve.losses, curve.smoothed_losses):
        metrics.append(Metric("lr_find/learning_rate", lr, timestamp, step))
        metrics.append(Metric("lr_find/loss", loss, timestamp, step))
        metrics.append(Metric("lr_find/smoothed_loss", smoothed, timestamp, step))
    for key, value in (
        ("suggested_lr", suggestion.suggested_lr),
        ("suggested_lr_steepest", suggestion.steepest),
        ("suggested_lr_valley", suggestion.valley),
        ("suggested_lr_min_div_10", suggestion.minimum_div_10),
    ):
        if value is not None:
            metrics.append(Metric(key, float(value), timestamp, 0))

    param_items = [Param(k, v) for k, v in _flatten_params(params or {}).items()]
    tags = [RunTag("lr_find.default_rule", suggestion.default_rule)]
    if suggestion.warning:
        tags.append(RunTag("lr_find.warning", suggestion.warning[:5000]))

    for i in range(0, len(param_items), _MLFLOW_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=param_items[i : i + _MLFLOW_PARAMS_PER_BATCH])
    client.log_batch(run_id, tags=tags)
    for i in range(0, len(metrics), _MLFLOW_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + _MLFLOW_METRICS_PER_BATCH])

    client.log_artifact(run_id, str(tsv_path))
    if png_path is not None:
        client.log_artifact(run_id, str(png_path))
    suggestion_file = tsv_path.parent / SUGGESTION_FILE_NAME
    if suggestion_file.exists():
        client.log_artifact(run_id, str(suggestion_file))
    return run_id
