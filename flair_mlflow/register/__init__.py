"""From a finished search to a servable, registered model: its best configuration trained, tested once,
logged as an MLflow pyfunc model and registered under the champion rule."""
