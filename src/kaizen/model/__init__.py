"""The project's model: data split, pipeline, metrics, safe serialization, MLflow."""
