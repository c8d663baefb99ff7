"""dataops_daily: a day's raw drops become validated features in the online store.

The Airflow DAG is the platform's (kaizen.dags.factories); its id is <project>.dataops_daily.
"""

from kaizen.dags.factories import dataops_daily

dataops_daily(__file__)
