"""Bad input of every kind is refused before the first run: exit 2, one line naming the field, no traceback,
and no run and no experiment in the store. Then what no table can show: Ctrl-C during start-up, a bad line
deep in a big column file, WNUT-17's own files, and sqlite stores that a stopped or a concurrent command
would otherwise leave half-migrated.

The table runs the real ``flair-mlflow tune`` in-process (click's runner) against one real sqlite store;
real processes only where a process is the point (signals, kill -9, two searches at once).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml
from click.testing import CliRunner

from flair_mlflow.cli import main

from .conftest import ROOT

BASE = """\
task: sequence_tagging
experiment: bad-input
corpus: {name: WNUT_17}
label_type: ner
downsample: 0.03
max_epochs: 1
max_evals: 1
seed: 7
search_space:
  hidden_size: {choice: [16, 32]}
  dropout: {uniform: [0.0, 0.3]}
fixed:
  embeddings: char
  learning_rate: 0.1
  mini_batch_size: 16
  use_crf: false
"""

#: a column corpus small enough to read in no time: every dev label also in train
TRAIN_SENTENCES = [
    "George\tB-person\nWashington\tI-person\nvisited\tO\nParis\tB-location\n.\tO",
    "The\tO\nBeatles\tB-group\nplayed\tO\nin\tO\nLiverpool\tB-location\n.\tO",
]
DEV_SENTENCES = ["Paris\tB-location\nis\tO\nnice\tO", "Ringo\tB-person\nsmiled\tO"]


# -- the store and the experiments -------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, flair_cache: Path) -> str:
    """One real sqlite store for the whole table (creating one takes seconds), made before any case."""
    from flair_mlflow.tracking.writer import RunWriter

    folder = tmp_path_factory.mktemp("bad-input-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    RunWriter(uri).client.search_experiments()  # the store is built on first use
    return uri


def _untouched(uri: str) -> None:
    """No experiment but MLflow's default, and no run at all."""
    import mlflow
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    assert [e.name for e in experiments] == ["Default"]
    assert client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL) == []


def _refused(result: Any, field: str, hint: bool = False) -> None:
    """Exit 2 and exactly one line that names the field (click's "Try ... --help" hint beside it for a
    mistyped option), nothing else on either stream."""
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, repr(result.exception))
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and field in errors[0], lines
    others = [line for line in lines if line not in errors and line.strip()]
    usage = [line for line in others if line.startswith(("Usage: ", "Try '"))]  # click's own hint
    assert others == (usage if hint else []), lines
    assert result.stdout == "" and "Traceback" not in result.output


def _corpus_folder(parent: Path, train: str | bytes | None = None, dev: str | None = None) -> Path:
    folder = parent / "corpus"
    folder.mkdir(exist_ok=True)
    for name, text in (
        ("train.txt", train if train is not None else "\n\n".join(TRAIN_SENTENCES * 20) + "\n"),
        ("dev.txt", dev if dev is not None else "\n\n".join(DEV_SENTENCES * 5) + "\n"),
        ("test.txt", "\n\n".join(DEV_SENTENCES) + "\n"),
    ):
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return folder


def _folder(**changes: Any) -> Callable[[dict, Path], None]:
    """An experiment on a local column folder (``train``/``dev`` replace the good files), and ``changes``."""
    train, dev = changes.pop("train", None), changes.pop("dev", None)
    corpus_changes = changes.pop("corpus", {})

    def change(data: dict, tmp_path: Path) -> None:
        corpus = {"folder": str(_corpus_folder(tmp_path, train, dev)), "column_format": {0: "text", 1: "ner"}}
        data["corpus"] = {**corpus, **corpus_changes}
        data.update({"downsample": 1.0, **changes})

    return change


def _top(**settings: Any) -> Callable[[dict, Path], None]:
    return lambda data, tmp_path: data.update(settings)


def _set(section: str, **values: Any) -> Callable[[dict, Path], None]:
    """Values set under ``section`` (fixed or search_space), and taken out of the other one."""
    other = "search_space" if section == "fixed" else "fixed"

    def change(data: dict, tmp_path: Path) -> None:
        for name, value in values.items():
            data[other].pop(name, None)
            data[section][name] = value

    return change


def _fix(**values: Any) -> Callable[[dict, Path], None]:
    return _set("fixed", **values)


def _search(**expressions: Any) -> Callable[[dict, Path], None]:
    return _set("search_space", **expressions)


# (id, change to the experiment file, field the one line names)
FILES = [
    # settings
    ("max_evals a billion", _top(max_evals=1.0e9), "max_evals"),
    ("max_evals zero", _top(max_evals=0), "max_evals"),
    ("seed negative", _top(seed=-1), "seed"),
    ("seed beyond 2**31", _top(seed=2**40), "seed"),
    ("downsample zero", _top(downsample=0), "downsample"),
    ("downsample above one", _top(downsample=1.5), "downsample"),
    ("max_epochs zero", _top(max_epochs=0), "max_epochs"),
    ("training_runs a word", _top(training_runs="three"), "training_runs"),
    ("algorithm unknown", _top(algorithm="bayes"), "algorithm"),
    ("task unknown", _top(task="parsing"), "task"),
    ("setting unknown", _top(max_evalz=3), "max_evalz"),
    ("pruning warm-up negative", _top(pruning={"warmup_epochs": -1}), "pruning.warmup_epochs"),
    ("early_stop_trials zero", _top(early_stop_trials=0), "early_stop_trials"),
    ("time budget zero", _top(time_budget_minutes=0), "time_budget_minutes"),
    ("embedding cache negative", _top(embedding_cache_mb=-1), "embedding_cache_mb"),
    ("parallelism zero", _top(parallelism=0), "parallelism"),
    # fixed values Flair or torch refuses
    ("mini_batch_size zero", _fix(mini_batch_size=0), "fixed.mini_batch_size"),
    ("learning_rate negative", _fix(learning_rate=-0.1), "fixed.learning_rate"),
    ("learning_rate zero", _fix(learning_rate=0), "fixed.learning_rate"),
    ("hidden_size negative", _fix(hidden_size=-5), "fixed.hidden_size"),
    ("dropout above one", _fix(dropout=1.5), "fixed.dropout"),
    ("word_dropout negative", _fix(word_dropout=-0.1), "fixed.word_dropout"),
    ("locked_dropout one", _fix(locked_dropout=1.0), "fixed.locked_dropout"),
    ("rnn_type unknown", _fix(rnn_type="FOO"), "fixed.rnn_type"),
    ("rnn_layers zero", _fix(rnn_layers=0), "fixed.rnn_layers"),
    ("patience negative", _fix(patience=-1), "fixed.patience"),
    ("anneal_factor above one", _fix(anneal_factor=1.5), "fixed.anneal_factor"),
    ("min_learning_rate negative", _fix(min_learning_rate=-1), "fixed.min_learning_rate"),
    ("warmup_fraction two", _fix(warmup_fraction=2), "fixed.warmup_fraction"),
    ("momentum negative", _fix(momentum=-0.5), "fixed.momentum"),
    ("weight_decay negative", _fix(weight_decay=-1), "fixed.weight_decay"),
    ("eps negative", _fix(eps=-1e-8), "fixed.eps"),
    ("betas above one", _fix(betas=[1.5, 0.9]), "fixed.betas"),
    ("layers not indices", _fix(layers="abc"), "fixed.layers"),
    ("use_crf not a flag", _fix(use_crf="maybe"), "fixed.use_crf"),
    # ranges whose bounds (or centre) no draw could use
    ("dropout high above one", _search(dropout={"uniform": [0.5, 1.5]}), "search_space.dropout"),
    ("dropout low negative", _search(dropout={"uniform": [-0.5, 0.3]}), "search_space.dropout"),
    ("dropout q-rounded above one", _search(dropout={"quniform": [0, 1.2, 0.1]}), "search_space.dropout"),
    ("dropout centred at two", _search(dropout={"normal": [2.0, 0.1]}), "search_space.dropout"),
    ("hidden_size option negative", _search(hidden_size={"choice": [16, -5]}), "search_space.hidden_size"),
    ("hidden_size rounds to zero", _search(hidden_size={"uniform": [0.3, 8]}), "search_space.hidden_size"),
    ("uniformint degenerate", _search(hidden_size={"uniformint": [16.2, 16.7]}), "search_space.hidden_size"),
    ("randint degenerate", _search(hidden_size={"randint": [16.2, 16.7]}), "search_space.hidden_size"),
    ("rnn_layers randint from zero", _search(rnn_layers={"randint": [0, 3]}), "search_space.rnn_layers"),
    (
        "pchoice probabilities outside [0, 1]",
        _search(hidden_size={"pchoice": [[1.5, 16], [-0.5, 32]]}),
        "search_space.hidden_size",
    ),
    ("loguniform overflowing", _search(learning_rate={"loguniform": [100, 1000]}), "search_space.learning_rate"),
    ("lognormal overflowing", _search(learning_rate={"lognormal": [800, 1]}), "search_space.learning_rate"),
    ("learning_rate from negative", _search(learning_rate={"uniform": [-0.1, 0.1]}), "search_space.learning_rate"),
    ("mini_batch_size from zero", _search(mini_batch_size={"quniform": [0, 64, 8]}), "search_space.mini_batch_size"),
    ("momentum from negative", _search(momentum={"uniform": [-1, 0.5]}), "search_space.momentum"),
    ("rnn_type option unknown", _search(rnn_type={"choice": ["LSTM", "FOO"]}), "search_space.rnn_type"),
    ("a flag drawn as a number", _search(use_crf={"uniform": [0, 1]}), "search_space.use_crf"),
    ("embeddings drawn as a number", _search(embeddings={"uniform": [0, 1]}), "search_space.embeddings"),
    # what only setting a trial up would show: checked once, before any run
    ("adam with momentum", _fix(optimizer="adam", momentum=0.9), "fixed.momentum"),
    ("adam with nesterov", _fix(optimizer="adam", nesterov=True), "fixed.nesterov"),
    ("sgd with betas", _fix(optimizer="sgd", betas=[0.9, 0.99]), "fixed.betas"),
    ("sgd nesterov without momentum", _fix(optimizer="sgd", nesterov=True), "fixed.nesterov"),
    ("optimizer class missing", _fix(optimizer="no.such.Optimizer"), "fixed.optimizer"),
    ("optimizer option missing", _search(optimizer={"choice": ["sgd", "nosuch"]}), "search_space.optimizer"),
    (
        "momentum for an adam option",
        lambda data, tmp_path: (
            _search(optimizer={"choice": ["sgd", "adam"]})(data, tmp_path) or _fix(momentum=0.9)(data, tmp_path)
        ),
        "fixed.momentum",
    ),
    ("max_grad_norm where train takes none", _fix(max_grad_norm=5.0), "fixed.max_grad_norm"),
    ("warmup_fraction where train takes none", _fix(warmup_fraction=0.1), "fixed.warmup_fraction"),
    # corpora
    ("label type absent", _top(label_type="pos"), "label_type"),
    ("downsample leaves too little", _top(downsample=0.0015), "downsample"),
    (
        "folder missing",
        _top(corpus={"folder": "/nonexistent/x", "column_format": {0: "text", 1: "ner"}}),
        "corpus.folder",
    ),
    (
        "column file of prose",
        _folder(train="Just a line of prose, not columns.\nAnother line of prose.\n"),
        "corpus.folder",
    ),
    ("column file with one column", _folder(train="@paulwalk\nis\nhere\n\n"), "corpus.folder"),
    ("column file in latin-1", _folder(train=b"caf\xe9\tO\n\n"), "corpus.folder"),
    ("column file of mixed widths", _folder(train="George\tB-person\tNNP\nwent\tO\n\n"), "corpus.folder"),
    ("column_format missing", _folder(corpus={"column_format": None}), "corpus.column_format"),
    ("train_file absent", _folder(corpus={"train_file": "nope.txt"}), "corpus.train_file"),
    ("column_delimiter not a regex", _folder(corpus={"arguments": {"column_delimiter": "["}}), "column_delimiter"),
    ("encoding unknown", _folder(corpus={"arguments": {"encoding": "utf-9"}}), "corpus.arguments.encoding"),
    ("dev label the training lacks", _folder(dev="Google\tB-corporation\nrocks\tO\n\n" * 3), "corpus"),
    ("dev with one label", _folder(dev="Paris\tB-location\nis\tO\nnice\tO\n\nvery\tO\nnice\tO\n"), "corpus"),
    ("folder sample too small", _folder(downsample=0.1), "downsample"),
]


@pytest.mark.parametrize("change,field", [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_a_bad_experiment_file_is_refused_before_any_run(tmp_path: Path, store: str, change, field):
    data = yaml.safe_load(BASE)
    change(data, tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    result = CliRunner().invoke(main, ["tune", str(path), "--tracking-uri", store])
    _refused(result, field)
    _untouched(store)


# (id, command line after `tune EXPERIMENT`, field, whether click's usage hint comes with the line)
COMMAND_LINES = [
    ("--max-evals 1.0e+9", ["--max-evals", "1.0e+9"], "--max-evals", True),
    ("--set max_evals=1000000000", ["--set", "max_evals=1000000000"], "max_evals", False),
    ("--set of no option", ["--set", "max_evalz=3"], "--set", True),
    ("--max-evals a word", ["--max-evals", "x"], "--max-evals", True),
    ("--seed -1", ["--seed", "-1"], "seed", False),
    ("--downsample 2", ["--downsample", "2"], "downsample", False),
    ("--max-epochs 0", ["--max-epochs", "0"], "max_epochs", False),
    ("--training-runs 0", ["--training-runs", "0"], "training_runs", False),
    ("--parallelism 0", ["--parallelism", "0"], "parallelism", False),
    ("--algorithm unknown", ["--algorithm", "bayes"], "--algorithm", True),
    ("--optimization-value unknown", ["--optimization-value", "f1"], "--optimization-value", True),
    ("an option that does not exist", ["--max-eval", "3"], "--max-eval", True),
    ("--tracking-uri of no known scheme", ["--tracking-uri", "garbage://x"], "tracking_uri", False),
    ("--tracking-uri under a file", ["--tracking-uri", "sqlite:////dev/null/x.db"], "tracking_uri", False),
    ("--resume of no run", ["--resume", "0123456789abcdef"], "resume", False),
    ("--lr-from of no run", ["--lr-from", "0123456789abcdef"], "lr_from", False),
]


@pytest.mark.parametrize("argv,field,hint", [c[1:] for c in COMMAND_LINES], ids=[c[0] for c in COMMAND_LINES])
def test_a_bad_command_line_is_refused_before_any_run(tmp_path: Path, store: str, argv, field, hint):
    path = tmp_path / "good.yaml"
    path.write_text(BASE, "utf-8")
    arguments = ["tune", str(path), *argv] + ([] if "--tracking-uri" in argv else ["--tracking-uri", store])
    result = CliRunner().invoke(main, arguments)
    _refused(result, field, hint)
    _untouched(store)


@pytest.mark.parametrize(
    "argv,field",
    [(["tune", "."], "CONFIG"), (["tune", "missing.yaml"], "config"), (["tunes", "e.yaml"], "tunes")],
    ids=["a folder as CONFIG", "no such file", "no such command"],
)
def test_a_bad_command_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv, field):
    monkeypatch.chdir(tmp_path)
    _refused(CliRunner().invoke(main, argv), field, hint=True)


def _half_migrated(source: Path, target: Path) -> None:
    """A store stopped part-way through MLflow's migrations: its record of them back at the first,
    one later table never made. MLflow would run them again and fail (table experiment_tags exists)."""
    shutil.copy(source, target)
    with sqlite3.connect(target) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '451aebb31d03'")
        connection.execute("DROP TABLE webhooks")
    connection.close()


@pytest.mark.parametrize("kind", ["half-migrated", "not a database"])
def test_a_store_that_is_not_whole_is_refused_and_left_as_it_is(tmp_path: Path, store: str, kind: str):
    broken = tmp_path / "broken.db"
    if kind == "half-migrated":
        _half_migrated(Path(store.removeprefix("sqlite:///")), broken)
    else:
        broken.write_bytes(b"not sqlite at all\n" * 64)
    before = broken.read_bytes()
    path = tmp_path / "good.yaml"
    path.write_text(BASE, "utf-8")
    result = CliRunner().invoke(main, ["tune", str(path), "--tracking-uri", f"sqlite:///{broken}"])
    _refused(result, "tracking_uri")
    if kind == "half-migrated":
        assert "holds no runs: delete it" in result.stderr
    else:
        assert broken.read_bytes() == before and "not an MLflow store" in result.stderr


# -- the good neighbours of the cases above pass the same checks ----------------------------------
@pytest.mark.parametrize(
    "change",
    [
        lambda data, tmp_path: None,
        _top(downsample=0.003),  # the smallest that works, as "downsample leaves too little" says
        _folder(downsample=0.15),  # likewise for "folder sample too small"
        _fix(optimizer="adam", betas=[0.9, 0.99]),
        _search(optimizer={"choice": ["sgd", "adam"]}),
    ],
    ids=["the base experiment", "WNUT_17 downsampled", "a folder downsampled", "adam with betas", "two optimizers"],
)
def test_the_good_neighbours_pass_every_check(tmp_path: Path, store: str, change):
    from flair_mlflow.config import ExperimentConfig
    from flair_mlflow.search.search import Search

    data = yaml.safe_load(BASE)
    change(data, tmp_path)
    Search(ExperimentConfig.from_dict(data), tracking_uri=store).prepare()
    _untouched(store)


def test_the_refusal_names_the_smallest_downsample_that_works(tmp_path: Path, store: str):
    data = yaml.safe_load(BASE)
    _folder(downsample=0.1)(data, tmp_path)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    result = CliRunner().invoke(main, ["tune", str(path), "--tracking-uri", store])
    assert "0.1 leaves 4 of 40 training and 1 of 10 dev sentences" in result.stderr, result.stderr
    assert result.stderr.rstrip().endswith("the smallest downsample that works with seed 7 is 0.15"), result.stderr


# -- column files ---------------------------------------------------------------------------------
def test_a_bad_line_after_line_200000_is_refused(tmp_path: Path, store: str):
    good = "\n\n".join(TRAIN_SENTENCES) + "\n\n"
    lines_per_copy = good.count("\n")
    text = good * (200_010 // lines_per_copy) + "George\tB-person\tNNP\n\n"
    data = yaml.safe_load(BASE)
    _folder(train=text)(data, tmp_path)
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    result = CliRunner().invoke(main, ["tune", str(path), "--tracking-uri", store])
    _refused(result, "corpus.folder")
    bad_line = text.count("\n") - 1
    assert bad_line > 200_000 and f"train.txt line {bad_line} has 3 columns" in result.stderr


def test_wnut17s_own_files_load_as_a_column_folder(flair_cache: Path, tmp_path: Path):
    """Its dev file ends in a line holding only a byte-order mark, which Flair reads as a token."""
    from flair_mlflow.config import CorpusConfig
    from flair_mlflow.corpus.load import load_corpus

    folder = flair_cache / "datasets" / "wnut_17"
    assert (folder / "emerging.dev.conll").read_bytes().endswith(b"\n\xef\xbb\xbf\n")
    corpus = CorpusConfig(
        folder=str(folder),
        column_format={0: "text", 1: "ner"},
        train_file="wnut17train.conll",
        dev_file="emerging.dev.conll",
        test_file="emerging.test.annotated",
    )
    loaded = load_corpus(corpus, label_type="ner")
    assert (len(loaded.train), len(loaded.dev), len(loaded.test)) == (3394, 1009, 1287)


# -- processes -------------------------------------------------------------------------------------
def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    """The command line as a terminal starts it: Ctrl-C not ignored, even where the tests run in a
    background job (whose processes inherit SIGINT ignored, and would never see the one sent here)."""
    return subprocess.Popen(
        [sys.executable, "-m", "flair_mlflow.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_ctrl_c_during_start_up_exits_130_with_one_line(tmp_path: Path, flair_cache: Path):
    """Two seconds in, ``tune`` is still loading torch, Flair and MLflow, long before any run."""
    path = tmp_path / "e.yaml"
    path.write_text(BASE, "utf-8")
    store = tmp_path / "m.db"
    process = _cli("tune", str(path), "--tracking-uri", f"sqlite:///{store}", cwd=tmp_path)
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    # 130, or killed by SIGINT (the shell's 130), when Python saw the signal inside an import
    assert process.returncode in (130, -signal.SIGINT), (process.returncode, err)
    assert err.splitlines() == ["Interrupted"] and out == ""
    if store.exists():
        _untouched(f"sqlite:///{store}")


def _creating(store: Path) -> list[Path]:
    return list(store.parent.glob(f".{store.name}.creating-*"))


@pytest.mark.slow
def test_a_store_whose_creation_was_killed_serves_the_next_search(tmp_path: Path, flair_cache: Path):
    from flair_mlflow import run_search

    store = tmp_path / "mlflow.db"
    code = f"from flair_mlflow.tracking.writer import RunWriter; RunWriter('sqlite:///{store}').client"
    creator = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 300
    while not _creating(store) and creator.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _creating(store), "the store was never being created"
    time.sleep(0.3)  # in the middle of MLflow's migrations
    creator.kill()
    creator.wait()
    assert not store.exists() and _creating(store)  # nothing half-written where the store goes

    path = tmp_path / "e.yaml"
    path.write_text(BASE, "utf-8")
    result = run_search(path, tracking_uri=f"sqlite:///{store}", show_progress=False)
    assert len(result.outcomes) == 1 and result.failed == 0
    assert not _creating(store)


@pytest.mark.slow
def test_two_searches_started_at_once_on_a_new_store_both_complete(tmp_path: Path, flair_cache: Path):
    import mlflow

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(BASE), "max_evals": 2}), "utf-8")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    searches = [_cli("tune", str(path), "--tracking-uri", uri, cwd=tmp_path) for _ in range(2)]
    results = [search.communicate(timeout=900) for search in searches]
    assert [search.returncode for search in searches] == [0, 0], [err[-2000:] for _, err in results]
    client = mlflow.MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "bad-input"]
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 2 and len(runs) == 2 + 2 * 2
    assert all(run.info.status == "FINISHED" for run in runs)


def test_a_ctrl_c_that_python_had_to_drop_is_delivered_again(monkeypatch):
    """A KeyboardInterrupt raised inside code Python runs for itself (here a ``__del__``) cannot propagate;
    the command line's processes send the signal again, so it still stops the command."""
    from flair_mlflow.cli import _deliver_lost_signals as deliver_lost_signals

    class RaisesOnCollection:
        def __del__(self) -> None:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, not a background job
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # put back afterwards
    try:
        deliver_lost_signals()
        with pytest.raises(KeyboardInterrupt):
            RaisesOnCollection()
            for _ in range(1000):
                time.sleep(0.001)
    finally:
        signal.signal(signal.SIGINT, previous)


# -- the ranges are the ones torch enforces ----------------------------------------------------------
@pytest.mark.parametrize(
    "name,refused,build",
    [
        ("learning_rate", -1e-6, lambda v: torch.optim.SGD(_weights(), lr=v)),
        ("momentum", -0.1, lambda v: torch.optim.SGD(_weights(), lr=0.1, momentum=v)),
        ("weight_decay", -0.1, lambda v: torch.optim.Adam(_weights(), weight_decay=v)),
        ("eps", -1e-8, lambda v: torch.optim.Adam(_weights(), eps=v)),
        ("betas", (1.0, 0.9), lambda v: torch.optim.Adam(_weights(), betas=v)),
        ("hidden_size", 0, lambda v: torch.nn.LSTM(4, v)),
        ("rnn_layers", 0, lambda v: torch.nn.LSTM(4, 4, num_layers=v)),
        ("dropout", 1.5, lambda v: torch.nn.Dropout(v)),
    ],
)
def test_a_value_outside_a_parameters_range_is_one_torch_refuses(name, refused, build):
    from flair_mlflow.config.parameters import checked_value
    from flair_mlflow.errors import ConfigError

    with pytest.raises(ConfigError):
        checked_value(name, refused, name)
    with pytest.raises(ValueError):
        build(refused)


def _weights() -> list:
    return [torch.zeros(1, requires_grad=True)]
