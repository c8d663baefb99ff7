"""Kaizen's Airflow DAGs, for every project: the factories, their task helpers, the runner.

A project's `dags/` holds thin files (`kaizen.dags.factories.<dag>(__file__)`): the DAG is
the platform's, its ids and assets are the project's (`<project>.<dag>`). This package
imports nothing at import time; `factories` and `tasks` stay light enough for parsing.
"""
