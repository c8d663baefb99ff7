"""training: the DVC training pipeline (dvc repro), run by the scheduler.

The Airflow DAG is the platform's (kaizen.dags.factories); its id is <project>.training.
"""

from kaizen.dags.factories import training

training(__file__)
