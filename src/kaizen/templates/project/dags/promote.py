"""promote: the promotion gates on a schedule.

The Airflow DAG is the platform's (kaizen.dags.factories); its id is <project>.promote.
"""

from kaizen.dags.factories import promote

promote(__file__)
