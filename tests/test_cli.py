"""The command line's faces: fast help, both option spellings, MLproject's command lines, one-line errors."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import flair_mlflow
from flair_mlflow.cli import CommandError, Interrupted, _given, lr_find, main, running
from flair_mlflow.errors import ConfigError, SearchFailed
from flair_mlflow.search.interrupts import SearchInterrupted

from .conftest import ROOT

HEAVY = ("torch", "flair", "hyperopt", "mlflow")

#: runs ARGV as ``python -m flair_mlflow.cli`` does, then prints which heavy modules it loaded
PROBE = """\
import json, runpy, sys
sys.argv = ["flair-mlflow", *json.loads(sys.argv[1])]
try:
    runpy.run_module("flair_mlflow.cli", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def _probe(code: str, *args: str) -> tuple[dict, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), elapsed


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["tune", "--help"],
        ["lr-find", "--help"],
        ["register", "--help"],
        ["trials", "--help"],
        ["--version"],
    ],
    ids=" ".join,
)
def test_help_loads_neither_torch_flair_hyperopt_nor_mlflow(argv):
    report, elapsed = _probe(PROBE, json.dumps(argv))
    assert report == {"code": 0, "heavy": []}
    assert elapsed < 5, f"{' '.join(argv)} took {elapsed:.1f} s"


def test_importing_the_package_is_cheap_and_names_load_on_use():
    code = f"import json, sys, flair_mlflow; print(json.dumps({{'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))"
    report, elapsed = _probe(code)
    assert report == {"heavy": []} and elapsed < 5, elapsed


def test_the_console_script_answers_help_quickly():
    script = Path(sys.executable).with_name("flair-mlflow")
    if not script.exists():
        pytest.skip("flair-mlflow is not installed as a console script here")
    started = time.monotonic()
    result = subprocess.run([str(script), "tune", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--max-evals" in result.stdout
    assert time.monotonic() - started < 5


def test_every_public_name_resolves_and_internal_classes_are_not_exported():
    assert not {"Search", "ParamSelector", "TrialRunner"} & set(flair_mlflow.__all__)
    for name in flair_mlflow.__all__:
        assert getattr(flair_mlflow, name) is not None, name
    with pytest.raises(AttributeError):
        flair_mlflow.Search  # noqa: B018


# -- parsing: what click hands each command; nothing runs ----------------------------------------
def _params(argv: list[str]) -> dict:
    parent = click.Context(main, info_name="flair-mlflow", **main.context_settings)
    name, command, rest = main.resolve_command(parent, argv)
    return command.make_context(name, rest, parent=parent).params


@pytest.mark.parametrize(
    "argv,expected",
    [
        ([], None),
        (["--evaluate-test"], True),
        (["--no-evaluate-test"], False),
        (["--evaluate-test", "--max-evals", "3"], True),
    ],
)
def test_a_switch_has_its_negation_and_stands_alone(argv, expected):
    assert _params(["tune", "e.yaml", *argv])["evaluate_test"] is expected
    assert _params(["tune", "--evaluate-test", "e.yaml"])["config"] == "e.yaml"


def test_set_gives_any_option_by_its_name_and_a_blank_value_means_not_given():
    params = _params(["tune", "e.yaml", "--set", "max_evals=20", "--set", "seed=", "--set", "evaluate_test=true"])
    assert params["sets"] == {"max_evals": 20, "evaluate_test": True}
    given = _given({"max_evals": None, "seed": 3, "evaluate_test": None}, params["sets"])
    assert given == {"max_evals": 20, "evaluate_test": True, "seed": 3}
    with pytest.raises(click.BadParameter, match="'max_evalz' is not an option"):
        _params(["tune", "--set", "max_evalz=3"])
    with pytest.raises(click.BadParameter, match="not a valid integer"):
        _params(["tune", "--set", "max_evals=many"])


def test_readme_commands_parse():
    assert (
        _params(["tune", "examples/wnut17.yaml", "--max-evals", "20", "--experiment", "wnut"])["experiment"] == "wnut"
    )
    lr = _params(["lr-find", "examples/wnut17.yaml", "--optimizer", "adam", "--iterations", "200"])
    assert (lr["optimizer"], lr["iterations"], lr["stop_early"]) == ("adam", 200, None)
    registered = _params(
        ["register", "abc", "--name", "X", "--max-epochs", "50", "--train-with-dev", "--downsample", "1.0"]
    )
    assert (registered["name"], registered["max_epochs"], registered["train_with_dev"]) == ("X", 50, True)
    assert _params(["trials", "abc", "--csv", "f.csv"])["csv_path"] == "f.csv"


def _mlflow_run_argv(entry_point: str, parameters: dict[str, str]) -> list[str]:
    """The command line ``mlflow run . -e ENTRY -P ...`` starts, as MLflow itself computes it."""
    from mlflow.projects._project_spec import load_project

    command = load_project(str(ROOT)).get_entry_point(entry_point).compute_command(parameters, None)
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "flair_mlflow.cli"], command
    return words[3:]


def _reached(entry_point: str, parameters: dict[str, str]) -> dict:
    """What the command's job receives from ``mlflow run . -e ENTRY -P ...``: its options, ``--set`` included."""
    params = _params(_mlflow_run_argv(entry_point, parameters))
    sets = params.pop("sets")
    return _given({k: v for k, v in params.items() if k not in ("params", "debug", "verbose")}, sets)


#: what the old command line took through ``mlflow run -P``, and what each value must arrive as
OLD_PARAMETERS = {
    "tune": (
        {
            "max_evals": "20",
            "max_epochs": "5",
            "training_runs": "3",
            "seed": "1",
            "algorithm": "rand",
            "optimization_value": "dev_loss",
            "downsample": "0.5",
            "parallelism": "2",
            "evaluate_test": "true",
            "threads": "auto",
            "lr_from": "r1",
            "resume": "",
        },
        {
            "max_evals": 20,
            "max_epochs": 5,
            "training_runs": 3,
            "seed": 1,
            "algorithm": "rand",
            "optimization_value": "dev_loss",
            "downsample": 0.5,
            "parallelism": 2,
            "evaluate_test": True,
            "threads": "auto",
            "lr_from": "r1",
        },
    ),
    "lr_find": (
        {
            "config": "c.yaml",
            "optimizer": "adam",
            "iterations": "200",
            "start_lr": "1e-6",
            "end_lr": "1",
            "mini_batch_size": "16",
        },
        {
            "optimizer": "adam",
            "iterations": 200,
            "start_learning_rate": 1e-6,
            "end_learning_rate": 1,
            "mini_batch_size": 16,
        },
    ),
    "register": (
        {
            "search_run_id": "abc",
            "model_name": "wnut-ner",
            "max_epochs": "50",
            "downsample": "1.0",
            "train_with_dev": "true",
        },
        {"search_run_id": "abc", "name": "wnut-ner", "max_epochs": 50, "downsample": 1.0, "train_with_dev": True},
    ),
}


@pytest.mark.parametrize("entry_point", ["main", "tune", "lr_find", "register"])
def test_mlproject_parameters_reach_the_options(entry_point):
    given, expected = OLD_PARAMETERS["tune" if entry_point == "main" else entry_point]
    reached = _reached(entry_point, given)
    assert {k: reached.get(k) for k in expected} == expected
    assert "resume" not in reached or reached["resume"] is None  # blank: not given
    assert not set(reached) - set(expected) - {"config", "search_run_id", "name", "tracking_uri", "run_name", "resume"}


def test_the_mlproject_declares_every_parameter_it_passes():
    from mlflow.projects._project_spec import load_project

    project = load_project(str(ROOT))
    for name in ("main", "tune", "lr_find", "register"):
        entry = project.get_entry_point(name)
        assert set(re.findall(r"{(\w+)}", entry.command)) == set(entry.parameters), name


# -- help ------------------------------------------------------------------------------------------
def test_help_lists_choices_and_defaults():
    tune_help = CliRunner().invoke(main, ["tune", "--help"]).output
    assert "[tpe|rand|anneal|atpe]" in tune_help and "[dev_score|dev_loss]" in tune_help
    assert "--evaluate-test / --no-evaluate-test" in tune_help


def test_lr_find_defaults_shown_are_the_ones_run_lr_find_uses():
    from flair_mlflow.lr_finder.curve import DEFAULTS

    shown = {p.name: p.help for p in lr_find.params if isinstance(p, click.Option)}
    for name in ("start_learning_rate", "end_learning_rate", "iterations", "smoothing_factor", "divergence_threshold"):
        assert float(re.search(r"\[default: ([^\]]+)\]", shown[name]).group(1)) == getattr(DEFAULTS, name), name


# -- failing -------------------------------------------------------------------------------------
@click.command()
@click.option("--debug", is_flag=True)
@click.argument("what")
def _failing(what: str, debug: bool) -> None:
    """A command that fails as asked, inside the same ``running`` as every real command."""
    errors = {
        "config": ConfigError("search_space.dropout", "low (0.5) must be below high (0.1)"),
        "failed": SearchFailed("all 2 trials failed"),
        "sigterm": SearchInterrupted(signal.SIGTERM, "p1"),
        "ctrl-c": KeyboardInterrupt(),
    }
    with running(debug):
        raise errors[what]


@pytest.mark.parametrize(
    "what,code,line",
    [
        ("config", 2, "Error: search_space.dropout: low (0.5) must be below high (0.1)"),
        ("failed", 1, "Error: all 2 trials failed"),
        (
            "sigterm",
            143,
            "Interrupted by SIGTERM: search run p1 and its running trial are KILLED; continue it with --resume p1",
        ),
        ("ctrl-c", 130, "Interrupted"),
    ],
)
def test_a_failure_is_one_line_on_stderr_and_its_exit_code(what, code, line):
    result = CliRunner().invoke(_failing, [what])
    assert result.exit_code == code
    assert result.stderr.splitlines() == [line] and result.stdout == ""


def test_debug_shows_the_traceback_instead():
    result = CliRunner().invoke(_failing, ["config", "--debug"])
    assert isinstance(result.exception, ConfigError) and result.exit_code == 1
    with pytest.raises(ConfigError):
        with running(True):
            raise ConfigError("seed", "must be an integer")


def test_failures_are_click_exceptions_with_their_codes():
    with pytest.raises(CommandError) as error:
        with running(False):
            raise ConfigError("seed", "must be an integer, not 'x'")
    assert (error.value.exit_code, error.value.message) == (2, "seed: must be an integer, not 'x'")
    with pytest.raises(Interrupted) as interrupted:
        with running(False):
            raise SearchInterrupted(signal.SIGINT, "p2")
    assert interrupted.value.exit_code == 130


def test_bad_input_to_a_real_command_is_one_line_and_exit_2(tmp_path: Path):
    """Through the real ``tune``: an experiment file with a setting that does not exist."""
    path = tmp_path / "bad.yaml"
    path.write_text("task: sequence_tagging\nnot_a_setting: 1\n", "utf-8")
    store = tmp_path / "m.db"
    result = CliRunner().invoke(main, ["tune", str(path), "--tracking-uri", f"sqlite:///{store}"])
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: "), result.stderr
    assert "not_a_setting" in result.stderr and not store.exists()
