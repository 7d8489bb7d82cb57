"""The command line's faces: fast help, both option spellings, MLproject's command lines, one-line errors."""

from __future__ import annotations

import inspect
import json
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
from flair_mlflow.cli import lr_find, main
from flair_mlflow.cli_types import CommandError, Interrupted, running
from flair_mlflow.core.errors import ConfigError
from flair_mlflow.core.interrupts import SearchInterrupted

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


def test_underscore_and_dash_spellings_are_one_option():
    dashes = _params(
        [
            "tune",
            "e.yaml",
            "--max-evals",
            "20",
            "--optimization-value",
            "dev_loss",
            "--lr-from",
            "r1",
            "--spark-master",
            "local[2]",
            "--tracking-uri",
            "sqlite:///m.db",
            "--run-name",
            "n",
        ]
    )
    underscores = _params(
        [
            "tune",
            "e.yaml",
            "--max_evals",
            "20",
            "--optimization_value",
            "dev_loss",
            "--lr_from",
            "r1",
            "--spark_master",
            "local[2]",
            "--tracking_uri",
            "sqlite:///m.db",
            "--run_name",
            "n",
        ]
    )
    assert dashes == underscores
    assert dashes["max_evals"] == 20 and dashes["optimization_value"] == "dev_loss"
    assert _params(["lr_find", "e.yaml", "--start_lr", "1e-6"])["start_learning_rate"] == 1e-6


@pytest.mark.parametrize(
    "argv,expected",
    [
        ([], None),
        (["--evaluate-test"], True),
        (["--evaluate_test", "true"], True),
        (["--evaluate_test", "false"], False),
        (["--no-evaluate-test"], False),
        (["--evaluate-test", "--max-evals", "3"], True),
        (["--evaluate_test", ""], None),  # an MLproject default: not given, the file's setting stands
    ],
)
def test_boolean_options_take_a_value_from_mlflow_or_stand_alone(argv, expected):
    assert _params(["tune", "e.yaml", *argv])["evaluate_test"] is expected


@pytest.mark.parametrize(
    "argv,name,config",
    [
        (["tune", "--evaluate-test", "e.yaml"], "evaluate_test", "e.yaml"),
        (["tune", "--evaluate_test", "e.yaml", "--max-evals", "3"], "evaluate_test", "e.yaml"),
        (["lr_find", "--stop-early", "e.yaml"], "stop_early", "e.yaml"),
        (["register", "--train-with-dev", "abc", "--name", "X"], "train_with_dev", "abc"),
    ],
)
def test_a_switch_before_an_argument_stands_alone(argv, name, config):
    params = _params(argv)
    assert params[name] is True and config in (params.get("config"), params.get("search_run_id"))


def test_blank_values_mean_not_given_and_integral_floats_are_integers():
    params = _params(["tune", "--resume=", "--seed", "", "--algorithm", "''", "--max_evals", "20.0"])
    assert params["resume"] is None and params["seed"] is None and params["algorithm"] is None
    assert params["max_evals"] == 20 and isinstance(params["max_evals"], int)


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


def test_mlproject_parameters_reach_the_options():
    tune = _params(
        _mlflow_run_argv(
            "tune",
            {
                "config": "examples/trec6.yaml",
                "max_evals": "20",
                "max_epochs": "5",
                "training_runs": "3",
                "seed": "1",
                "algorithm": "rand",
                "optimization_value": "dev_loss",
                "downsample": "0.5",
                "parallelism": "2",
                "resume": "",
                "evaluate_test": "true",
            },
        )
    )
    assert tune == {
        **tune,
        "config": "examples/trec6.yaml",
        "max_evals": 20,
        "max_epochs": 5,
        "training_runs": 3,
        "seed": 1,
        "algorithm": "rand",
        "optimization_value": "dev_loss",
        "downsample": 0.5,
        "parallelism": 2,
        "resume": None,
        "evaluate_test": True,
    }
    lr = _params(
        _mlflow_run_argv(
            "lr_find",
            {
                "config": "c.yaml",
                "optimizer": "adam",
                "iterations": "200",
                "start_lr": "1e-6",
                "end_lr": "1",
                "mini_batch_size": "16",
            },
        )
    )
    assert (
        lr["optimizer"],
        lr["iterations"],
        lr["start_learning_rate"],
        lr["end_learning_rate"],
        lr["mini_batch_size"],
    ) == ("adam", 200, 1e-6, 1.0, 16)
    registered = _params(
        _mlflow_run_argv(
            "register",
            {
                "search_run_id": "abc",
                "model_name": "wnut-ner",
                "max_epochs": "50",
                "downsample": "1.0",
                "train_with_dev": "true",
            },
        )
    )
    assert registered == {
        **registered,
        "search_run_id": "abc",
        "name": "wnut-ner",
        "max_epochs": 50,
        "downsample": 1.0,
        "train_with_dev": True,
    }


# -- help ------------------------------------------------------------------------------------------
def test_help_lists_choices_and_defaults():
    tune_help = CliRunner().invoke(main, ["tune", "--help"]).output
    assert "[tpe|rand|anneal|atpe]" in tune_help and "[dev_loss|dev_score]" in tune_help
    assert "--max_evals" not in tune_help  # one spelling shown; the other is normalised
    lr_help = " ".join(CliRunner().invoke(main, ["lr-find", "--help"]).output.split())  # unwrapped
    assert "[default: (100)]" in lr_help and "[default: (0.9)]" in lr_help


def test_lr_find_defaults_shown_are_the_ones_run_lr_find_uses():
    from flair_mlflow.lr_find.run import run_lr_find

    defaults = inspect.signature(run_lr_find).parameters
    shown = {p.name: p.show_default for p in lr_find.params if isinstance(p, click.Option)}
    for name in ("start_learning_rate", "end_learning_rate", "iterations", "smoothing_factor", "divergence_threshold"):
        assert float(shown[name]) == defaults[name].default, name


# -- failing -------------------------------------------------------------------------------------
@click.command()
@click.option("--debug", is_flag=True)
@click.argument("what")
def _failing(what: str, debug: bool) -> None:
    """A command that fails as asked, inside the same ``running`` as every real command."""
    errors = {
        "config": ConfigError("search_space.dropout", "low (0.5) must be below high (0.1)"),
        "io": OSError("disk on fire"),
        "sigterm": SearchInterrupted(signal.SIGTERM, "p1"),
        "ctrl-c": KeyboardInterrupt(),
    }
    with running(debug, exit_1=(OSError,)):
        raise errors[what]


@pytest.mark.parametrize(
    "what,code,line",
    [
        ("config", 2, "Error: search_space.dropout: low (0.5) must be below high (0.1)"),
        ("io", 1, "Error: disk on fire"),
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
    result = CliRunner().invoke(main, ["tune", str(path), "--tracking_uri", f"sqlite:///{store}"])
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: "), result.stderr
    assert "not_a_setting" in result.stderr and not store.exists()
