"""The pyfunc face of a Flair model (texts in, spans or labels out), logged as model code and run by path on load:
so it imports only mlflow, pandas and (lazily) flair, never the rest of ``flair_mlflow``."""

from __future__ import annotations

import math
from typing import Any

import mlflow
import pandas as pd
import pydantic
from mlflow.pyfunc import PythonModel

#: The name of the Flair model file among the pyfunc model's artefacts.
FLAIR_MODEL_ARTIFACT = "flair_model"
TEXT_COLUMN = "text"
PREDICT_BATCH_SIZE = 32


def texts_of(model_input: Any) -> list[str]:
    """The texts of a DataFrame (its ``text`` column, else its first), a Series, a list or array, or one string."""
    if isinstance(model_input, pd.DataFrame) and TEXT_COLUMN in model_input.columns:
        model_input = model_input[TEXT_COLUMN]
    elif isinstance(model_input, pd.DataFrame):
        model_input = model_input.iloc[:, 0] if model_input.shape[1] else []
    if isinstance(model_input, str):
        model_input = [model_input]
    values = list(model_input.tolist() if hasattr(model_input, "tolist") else model_input)
    values = [v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v for v in values]
    return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]


def load_flair_model(path: str):
    """The Flair model of the class its state names, from disk only (``Classifier.load`` asks the hub first)."""
    import flair.models
    from flair.file_utils import load_torch_state

    state = load_torch_state(path)
    class_name = state.get("__cls__")
    model_class = getattr(flair.models, class_name, None) if class_name else None
    if model_class is None:
        raise ValueError(f"'{path}' is not a Flair model file of a known class ({class_name!r})")
    model = model_class.load(state)
    model.eval()
    return model


def predict_texts(model, texts: list[str], mini_batch_size: int = PREDICT_BATCH_SIZE) -> list[list[dict[str, Any]]]:
    """Per text, a tagger's spans ``{text, label, start, end, score}`` (offsets into it), else labels best first."""
    from flair.data import Sentence
    from flair.models import SequenceTagger

    sentences = [Sentence(text) for text in texts]
    non_empty = [s for s in sentences if len(s) > 0]
    if non_empty:
        model.predict(non_empty, mini_batch_size=mini_batch_size, verbose=False)
    label_type = model.label_type
    tagger = isinstance(model, SequenceTagger)
    results: list[list[dict[str, Any]]] = []
    for text, sentence in zip(texts, sentences):
        if tagger:
            spans = []
            for span in sentence.get_spans(label_type):
                label = span.get_label(label_type)
                start, end = int(span.start_position), int(span.end_position)
                found = {"text": text[start:end], "label": str(label.value), "start": start, "end": end}
                spans.append({**found, "score": float(label.score)})
            results.append(spans)
        else:
            labels = sorted(sentence.get_labels(label_type), key=lambda label: -float(label.score))
            results.append([{"label": str(label.value), "score": float(label.score)} for label in labels])
    return results


class Prediction(pydantic.BaseModel):
    """One span of a tagger (all fields) or one label of a classifier (``label`` and ``score``): the output schema."""

    label: str
    score: float
    text: str | None = None
    start: int | None = None
    end: int | None = None


class FlairPyfuncModel(PythonModel):
    """Serves the ``flair_model`` artefact; ``predict``'s type hints are the signature MLflow checks inputs by."""

    def load_context(self, context) -> None:
        self.model = load_flair_model(context.artifacts[FLAIR_MODEL_ARTIFACT])

    def predict(self, context, model_input: list[str], params: dict[str, Any] | None = None) -> list[list[Prediction]]:
        return predict_texts(self.model, texts_of(model_input))


# MLflow runs this file by path to load the model and takes the model this call sets; importing the
# module normally only sets a global of mlflow that nothing else reads.
mlflow.models.set_model(FlairPyfuncModel())
