"""replay_batch: re-validate one quarantined batch after a fix.

The Airflow DAG is the platform's (kaizen.dags.factories); its id is <project>.replay_batch.
"""

from kaizen.dags.factories import replay_batch

replay_batch(__file__)
