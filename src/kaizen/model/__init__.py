"""The credit-risk model: data split, pipeline, metrics, safe serialization, MLflow."""
