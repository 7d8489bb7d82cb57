"""What the CPU tests cannot show: the learning-rate finder on a CUDA device.

After a range test the model's weights, the optimizer's state, the gradients, the train/eval modes
and every random generator (CPU and CUDA) must be exactly what they were, and every tensor must
still be on the device it started on. Needs flair and torch only (the finder is imported from
this checkout and imports neither MLflow nor hyperopt, so neither has to be installed there)::

    FLAIR_CACHE_ROOT=<writable copy of Flair's cache> python benchmarks/gpu_lr_finder_check.py

Prints one line per check and exits non-zero if any fails.
"""

from __future__ import annotations

import copy
import random
import sys
import tempfile
import time
from pathlib import Path

import flair
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, installed or not

from flair_mlflow.lr_finder.curve import read_learning_rate_tsv  # noqa: E402
from flair_mlflow.lr_finder.rules import suggest_learning_rates  # noqa: E402
from flair_mlflow.lr_finder.run import find_learning_rate  # noqa: E402

failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}{'  ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def same_tensors(before: dict, after: dict) -> bool:
    return before.keys() == after.keys() and all(
        torch.equal(before[k], after[k]) and before[k].device == after[k].device for k in before
    )


def same_optimizer_state(before: dict, after: dict) -> bool:
    if before["state"].keys() != after["state"].keys() or before["param_groups"] != after["param_groups"]:
        return False
    for pid, state in before["state"].items():
        for name, value in state.items():
            other = after["state"][pid][name]
            if isinstance(value, torch.Tensor):
                if not (torch.equal(value, other) and value.device == other.device):
                    return False
            elif value != other:
                return False
    return True


def make_classifier(corpus):
    from flair.embeddings import DocumentRNNEmbeddings, WordEmbeddings
    from flair.models import TextClassifier

    words = sorted({t.text.lower() for s in corpus.get_all_sentences() for t in s})
    embeddings = WordEmbeddings(
        None,
        vocab={w: i for i, w in enumerate(words)},
        embedding_length=50,
        name="random-50d",
        fine_tune=True,
        force_cpu=False,
    )
    document = DocumentRNNEmbeddings([embeddings], hidden_size=64, dropout=0.3, word_dropout=0.05)
    dictionary = corpus.make_label_dictionary("question_class", add_unk=False)
    return TextClassifier(document, label_type="question_class", label_dictionary=dictionary).to(flair.device)


def main() -> int:
    from flair.datasets import TREC_6, DataLoader
    from flair.trainers import ModelTrainer

    if "--cpu" in sys.argv:  # a dry run of the script itself where there is no GPU
        flair.device = torch.device("cpu")
    elif torch.cuda.is_available():
        flair.device = torch.device("cuda:0")
    else:
        print("no CUDA device: nothing to check (--cpu runs the checks on the CPU)")
        return 2
    cuda = flair.device.type == "cuda"
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    print(f"device: {name}, torch {torch.__version__}, flair {flair.__version__}", flush=True)
    flair.set_seed(1)
    corpus = TREC_6().downsample(0.2)
    model = make_classifier(corpus)

    # Adam with real state, on the GPU, the model in train mode with dropout
    adam = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.8, 0.95))
    model.train()
    for batch in list(DataLoader(corpus.train, batch_size=16))[:3]:
        adam.zero_grad()
        loss, _ = model.forward_loss(batch)
        loss.backward()
        adam.step()
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer_state = copy.deepcopy(adam.state_dict())
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    devices = {p.device for p in model.parameters()}
    generators = (
        torch.get_rng_state(),
        torch.cuda.get_rng_state_all() if cuda else [],
        random.getstate(),
        np.random.get_state(),
    )

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        tsv = find_learning_rate(
            ModelTrainer(model, corpus),
            folder,
            optimizer=adam,
            start_learning_rate=1e-5,
            end_learning_rate=10.0,
            iterations=60,
            mini_batch_size=32,
        )
        seconds = time.perf_counter() - started
        curve = read_learning_rate_tsv(tsv)
        suggestion = suggest_learning_rates(curve.learning_rates, curve.smoothed_losses)

    check("model weights restored (values and device)", same_tensors(weights, model.state_dict()))
    check(
        "Adam state restored (moments, step, hyper-parameters)",
        same_optimizer_state(optimizer_state, adam.state_dict()),
    )
    check(
        "gradients restored",
        all(
            (p.grad is None) == (g is None) and (g is None or torch.equal(p.grad, g))
            for p, g in zip(model.parameters(), grads)
        ),
    )
    check("parameters still on the device", {p.device for p in model.parameters()} == devices, str(devices))
    check("train mode kept", model.training)
    after = (
        torch.get_rng_state(),
        torch.cuda.get_rng_state_all() if cuda else [],
        random.getstate(),
        np.random.get_state(),
    )
    check("CPU torch RNG restored", torch.equal(generators[0], after[0]))
    check(
        "CUDA RNG restored" if cuda else "(no CUDA RNG on the CPU)",
        all(torch.equal(a, b) for a, b in zip(generators[1], after[1])),
    )
    check(
        "Python and NumPy RNG restored",
        generators[2] == after[2]
        and all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(generators[3], after[3])),
    )
    check(
        "curve recorded",
        len(curve.learning_rates) > 10,
        f"{len(curve.learning_rates)} rows in {seconds:.1f}s, "
        f"suggested {suggestion.suggested_lr:.3g} ({suggestion.default_rule})",
    )

    # the same model in eval mode with SGD as a class: eval mode comes back, the next draw is the same
    model.eval()
    torch.manual_seed(5)
    expected = torch.rand(3, device=flair.device)
    torch.manual_seed(5)
    with tempfile.TemporaryDirectory() as folder:
        find_learning_rate(
            ModelTrainer(model, corpus),
            folder,
            optimizer=torch.optim.SGD,
            iterations=20,
            mini_batch_size=32,
            momentum=0.9,
        )
    check("eval mode kept", not any(m.training for m in model.modules()))
    check(
        "the next random draw on the device is the one it would have been",
        torch.equal(torch.rand(3, device=flair.device), expected),
    )
    check("weights unchanged after the SGD run", same_tensors(weights, model.state_dict()))
    print(f"{len(failures)} failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
