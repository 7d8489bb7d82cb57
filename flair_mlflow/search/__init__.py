"""The hyperopt search: trials as nested MLflow runs under a parent, in sequence or on Spark, resumable."""
