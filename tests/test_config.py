"""Bad input: one line naming the field, exit code 2, and nothing written to the tracking store."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from flair_mlflow import ConfigError, ExperimentConfig

from .conftest import WNUT_TINY


def _base() -> dict:
    return yaml.safe_load(WNUT_TINY.format(experiment="bad", max_evals=1, training_runs=1))


def _with(change) -> dict:
    data = _base()
    change(data)
    return data


def _space(name: str, expression: dict):
    return lambda d: d["search_space"].update({name: expression})


CASES = [
    ("unknown setting", lambda d: d.update(max_evalz=3), "max_evalz"),
    ("bad task", lambda d: d.update(task="parsing"), "task"),
    ("negative epochs", lambda d: d.update(max_epochs=-1), "max_epochs"),
    ("zero evals", lambda d: d.update(max_evals=0), "max_evals"),
    ("bad algorithm", lambda d: d.update(algorithm="bayes"), "algorithm"),
    ("bad optimization value", lambda d: d.update(optimization_value="f1"), "optimization_value"),
    ("downsample above one", lambda d: d.update(downsample=1.5), "downsample"),
    ("wrong type", lambda d: d.update(training_runs="three"), "training_runs"),
    ("unknown parameter", lambda d: d["search_space"].update(hiden_size={"choice": [1]}), "search_space.hiden_size"),
    ("unknown expression", lambda d: d["search_space"].update(dropout={"gaussian": [0, 1]}), "search_space.dropout"),
    ("low above high", lambda d: d["search_space"].update(dropout={"uniform": [0.5, 0.1]}), "search_space.dropout"),
    ("empty choice", lambda d: d["search_space"].update(hidden_size={"choice": []}), "search_space.hidden_size"),
    ("missing argument", lambda d: d["search_space"].update(dropout={"uniform": {"low": 0.1}}), "search_space.dropout"),
    (
        "pchoice not summing to one",
        lambda d: d["search_space"].update(hidden_size={"pchoice": [[0.5, 8], [0.2, 16]]}),
        "search_space.hidden_size",
    ),
    (
        "parameter of the other task",
        lambda d: d["search_space"].update(pooling={"choice": ["mean"]}),
        "search_space.pooling",
    ),
    ("fixed unknown", lambda d: d["fixed"].update(learning_rat=0.1), "fixed.learning_rat"),
    ("fixed reserved", lambda d: d["fixed"].update(train_with_dev=True), "fixed.train_with_dev"),
    ("fixed and searched", lambda d: d["fixed"].update(dropout=0.1), "fixed.dropout"),
    (
        "corpus folder missing",
        lambda d: d.update(corpus={"folder": "/nonexistent/x", "column_format": {0: "text"}}),
        "corpus.folder",
    ),
    ("corpus name and folder", lambda d: d.update(corpus={"name": "WNUT_17", "folder": "."}), "corpus"),
    ("max_evals above the cap", lambda d: d.update(max_evals=10_001), "max_evals"),
    ("seed below zero", lambda d: d.update(seed=-1), "seed"),
    ("fixed value out of range", lambda d: d["fixed"].update(learning_rate=-0.1), "fixed.learning_rate"),
    ("fixed name not an option", lambda d: d["fixed"].update(rnn_type="lstm"), "fixed.rnn_type"),
    ("choice option out of range", _space("hidden_size", {"choice": [16, 0]}), "search_space.hidden_size"),
    ("end of a range out of range", _space("dropout", {"uniform": [0.1, 1.0]}), "search_space.dropout"),
    ("loguniform bounds not logs", _space("dropout", {"loguniform": [0.01, 0.5]}), "search_space.dropout"),
    ("randint bounds not whole", _space("hidden_size", {"randint": [8, 16.5]}), "search_space.hidden_size"),
    (
        "column_delimiter not a regex",
        lambda d: d.update(
            corpus={"folder": ".", "column_format": {0: "text"}, "arguments": {"column_delimiter": "("}}
        ),
        "corpus.arguments.column_delimiter",
    ),
]


@pytest.mark.parametrize("label,change,field", CASES, ids=[c[0] for c in CASES])
def test_each_validation_rule_names_its_field(label, change, field):
    with pytest.raises(ConfigError) as error:
        ExperimentConfig.from_dict(_with(change))
    assert error.value.field == field
    assert "\n" not in str(error.value)


def test_truncated_file_is_refused(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text(WNUT_TINY.format(experiment="x", max_evals=1, training_runs=1)[:200] + "\n  choice: [", "utf-8")
    with pytest.raises(ConfigError) as error:
        ExperimentConfig.from_file(path)
    assert error.value.field == "config"
    assert "line" in str(error.value)


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"\xff\xfe\x00\x01task: x\x00", "UTF-8"),
        (b"- task\n- corpus\n", "mapping"),
        (b"", "mapping"),
        (b"task: sequence_tagging\ncorpus: {name: WNUT_17\n", "line"),
    ],
    ids=["binary", "a list", "empty", "unclosed mapping"],
)
def test_corrupt_file_is_refused(tmp_path: Path, content: bytes, expected: str):
    path = tmp_path / "corrupt.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        ExperimentConfig.from_file(path)
    assert error.value.field == "config" and expected in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "train,problem",
    [
        ("Just a line of prose, not columns.\nAnother line of prose.\n", "line 2 has 4 columns but line 1 has 7"),
        ("@paulwalker\nis\nhere\n\n", "line 1 has 1 column(s); column_format needs 2"),
        (b"caf\xe9 O\n\n", "is not utf-8 text"),
    ],
    ids=["prose", "too few columns", "latin-1"],
)
def test_malformed_column_files_are_refused_before_any_run(tmp_path: Path, flair_cache, train, problem):
    from flair_mlflow import run_search

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.txt").write_bytes(train if isinstance(train, bytes) else train.encode("utf-8"))
    (folder / "dev.txt").write_text("Hello O\nParis B-location\n\n", "utf-8")
    data = _with(lambda d: d.update(corpus={"folder": str(folder), "column_format": {0: "text", 1: "ner"}}))
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    store = tmp_path / "mlflow.db"
    with pytest.raises(ConfigError) as error:
        run_search(path, tracking_uri=f"sqlite:///{store}", show_progress=False)
    assert error.value.field == "corpus.folder"
    assert f"train.txt {problem}" in str(error.value) and "\n" not in str(error.value)
    assert not store.exists()  # a refused command creates no store


def test_overrides_replace_top_level_settings(tmp_path: Path):
    path = tmp_path / "e.yaml"
    path.write_text(WNUT_TINY.format(experiment="x", max_evals=1, training_runs=1), "utf-8")
    config = ExperimentConfig.from_file(path, {"max_evals": 9, "seed": None, "algorithm": "anneal"})
    assert (config.max_evals, config.seed, config.algorithm) == (9, 7, "anneal")
    again = ExperimentConfig.from_dict(yaml.safe_load(config.to_yaml()))
    assert again == config


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flair_mlflow.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "label,change,field",
    [
        (
            "unknown parameter",
            lambda d: d["search_space"].update(hiden_size={"choice": [1]}),
            "search_space.hiden_size",
        ),
        ("label type absent", lambda d: d.update(label_type="pos"), "label_type"),
        (
            "embedding that cannot load",
            lambda d: d["search_space"].update(embeddings={"choice": ["/no/such/vectors.gensim"]}),
            "search_space.embeddings",
        ),
        ("unknown dataset", lambda d: d.update(corpus={"name": "NO_SUCH_CORPUS"}), "corpus.name"),
    ],
)
@pytest.mark.slow
def test_cli_refuses_bad_input_before_creating_runs(tmp_path: Path, flair_cache, label, change, field):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with(change)), "utf-8")
    store = tmp_path / "mlflow.db"
    result = _run_cli(["tune", str(path), "--tracking-uri", f"sqlite:///{store}"], tmp_path)
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and field in error_lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not store.exists()


@pytest.mark.slow
def test_flair_download_failure_says_how_to_run_offline(tmp_path: Path, flair_cache):
    data = _with(lambda d: d["search_space"].update(embeddings={"choice": ["glove"]}))
    path = tmp_path / "online.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    result = _run_cli(["tune", str(path), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"], tmp_path)
    assert result.returncode == 2
    assert "search_space.embeddings" in result.stderr and "FLAIR_CACHE_ROOT" in result.stderr


@pytest.mark.slow
def test_unreachable_tracking_server_fails_fast_before_any_run(tmp_path: Path, flair_cache):
    """MLflow retries for minutes by default; the probe before a search must not."""
    from .servers import free_port

    path = tmp_path / "e.yaml"
    path.write_text(WNUT_TINY.format(experiment="x", max_evals=1, training_runs=1), "utf-8")
    started = time.monotonic()
    result = _run_cli(["tune", str(path), "--tracking-uri", f"http://127.0.0.1:{free_port()}"], tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-2000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "tracking_uri: cannot reach" in error_lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert elapsed < 90, f"took {elapsed:.0f} s: the probe waited on MLflow's retries"


@pytest.mark.slow
def test_tune_needs_a_file_or_a_run_to_resume(tmp_path: Path):
    result = _run_cli(["tune", "--resume="], tmp_path)  # an empty --resume means none, as with MLproject defaults
    assert result.returncode == 2
    assert "Error: config: give an experiment file, or --resume" in result.stderr and "Traceback" not in result.stderr


def test_relative_corpus_folder_is_read_from_the_experiment_files_folder(tmp_path: Path, monkeypatch):
    data_folder = tmp_path / "experiments" / "data"
    data_folder.mkdir(parents=True)
    (data_folder / "train.txt").write_text("George B-person\nWashington I-person\n", "utf-8")
    data = _base()
    data["corpus"] = {"folder": "data", "column_format": {0: "text", 1: "ner"}, "train_file": "train.txt"}
    path = tmp_path / "experiments" / "e.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    monkeypatch.chdir(tmp_path)  # not the file's folder
    assert ExperimentConfig.from_file(path).corpus.folder == str(data_folder.resolve())


EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_shipped_examples_are_valid_experiments(path: Path):
    """The files README and MLproject point users to must pass the same validation as theirs."""
    from hyperopt.pyll import stochastic

    from flair_mlflow.search.space import hyperopt_space

    config = ExperimentConfig.from_file(path)
    space = hyperopt_space(config.search_space)
    sampled = stochastic.sample(space)
    assert set(sampled) == set(config.search_space)
    assert config.max_evals >= 1 and config.experiment


# -- refused at once: every float finite, and no heavy import before the file is checked ---------------
FLOATS = ["learning_rate", "dropout", "momentum", "anneal_factor", "weight_decay"]


def _non_finite(name: str, where: str, value: float) -> dict:
    data = _with(lambda d: d["fixed"].update(optimizer="sgd") if name == "momentum" else None)
    data["fixed"].pop(name, None)
    data["search_space"].pop(name, None)
    if where == "fixed":
        data["fixed"][name] = value
    elif where == "choice":
        data["search_space"][name] = {"choice": [value, 0.1]}
    else:
        data["search_space"][name] = {"uniform": [0.0, value]} if where == "range high" else {"uniform": [value, 0.2]}
    return data


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("where", ["fixed", "choice", "range low", "range high"])
@pytest.mark.parametrize("name", FLOATS)
def test_a_non_finite_number_is_refused_in_one_line_before_any_run(tmp_path: Path, name, where, value):
    from click.testing import CliRunner

    from flair_mlflow.cli import main

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(_non_finite(name, where, value)), "utf-8")
    store = tmp_path / "mlflow.db"
    result = CliRunner().invoke(main, ["tune", str(path), "--tracking-uri", f"sqlite:///{store}"])
    field = f"fixed.{name}" if where == "fixed" else f"search_space.{name}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and field in errors[0], result.output
    assert "finite" in errors[0] and not store.exists()


REFUSALS = {
    "malformed YAML": "task: sequence_tagging\ncorpus: {name: WNUT_17\n",
    "unknown setting": WNUT_TINY.format(experiment="x", max_evals=1, training_runs=1) + "max_evalz: 3\n",
    "bad range": WNUT_TINY.format(experiment="x", max_evals=1, training_runs=1).replace("high: 0.3", "high: -0.3"),
}
#: runs the command line in a fresh interpreter and reports its exit code, its wall time and what it imported
REFUSAL_PROBE = """\
import json, sys, time
started = time.perf_counter()
from flair_mlflow.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "flair", "hyperopt", "mlflow") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy, "seconds": time.perf_counter() - started}))
"""


@pytest.mark.parametrize("content", list(REFUSALS.values()), ids=list(REFUSALS))
def test_a_file_refused_before_flair_is_refused_without_importing_it(tmp_path: Path, content):
    """The refusal's own clock says how long it took (the closing note reports it); the test checks what it
    imported, which a loaded machine cannot change."""
    import json

    path = tmp_path / "e.yaml"
    path.write_text(content, "utf-8")
    store = tmp_path / "mlflow.db"
    result = subprocess.run(
        [sys.executable, "-c", REFUSAL_PROBE, "tune", str(path), "--tracking-uri", f"sqlite:///{store}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 2 and report["heavy"] == [], (report, result.stderr)
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error: ")]) == 1, result.stderr
    assert not store.exists()
    print(f"refused in {report['seconds']:.2f} s")
