"""The search space in hyperopt's terms, from the experiment file or added with ``hp`` as Flair's tutorial did."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from hyperopt import anneal, hp, rand, tpe

from ..config.expressions import EXPRESSIONS, checked_expression
from ..config.parameters import PARAMETERS, Parameter
from ..errors import ConfigError

HP_FUNCTIONS: dict[str, Callable[..., Any]] = {kind: getattr(hp, kind) for kind in EXPRESSIONS}


def hyperopt_space(search_space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """hyperopt's expressions for checked ones (``{kind: {argument: value}}``), each labelled by its parameter."""
    space = {}
    for name, spec in search_space.items():
        kind, named = next(iter(spec.items()))
        if kind == "pchoice":
            space[name] = hp.pchoice(name, [(p, value) for p, value in named["p_options"]])
        else:
            space[name] = HP_FUNCTIONS[kind](name, *named.values())
    return space


class SearchSpace:
    """The tutorial's ``space.add(Parameter.DROPOUT, hp.uniform, low=0.0, high=0.5)``, kept in the experiment's form."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, dict[str, Any]]] = {}

    def add(self, parameter: Parameter | str, func: Callable[..., Any], **kwargs: Any) -> SearchSpace:
        name = parameter.value if isinstance(parameter, Parameter) else str(parameter)
        if name not in PARAMETERS:
            raise ConfigError(f"search_space.{name}", f"unknown parameter '{name}'")
        kind = getattr(func, "__name__", "").removeprefix("hp_")
        if HP_FUNCTIONS.get(kind) is not func:
            raise ConfigError(f"search_space.{name}", f"{func!r} is not one of hyperopt's hp functions")
        self.entries[name] = {kind: dict(kwargs)}
        return self

    @property
    def search_space(self) -> dict[str, Any]:
        return self.get_search_space()

    def get_search_space(self) -> dict[str, Any]:
        return hyperopt_space({name: checked_expression(name, spec) for name, spec in self.entries.items()})

    def __len__(self) -> int:
        return len(self.entries)


def algorithm_suggest(name: str) -> Callable:
    """hyperopt's suggest function for ``tpe``, ``rand``, ``anneal`` or ``atpe``."""
    if name == "atpe":
        try:
            from hyperopt import atpe
        except ImportError:
            needs = "'atpe' needs lightgbm and scikit-learn: pip install 'flair-mlflow[atpe]'"
            raise ConfigError("algorithm", needs) from None
        return atpe.suggest
    return {"tpe": tpe.suggest, "rand": rand.suggest, "anneal": anneal.suggest}[name]
