"""monitor: is the champion still right about the world it serves?

The Airflow DAG is the platform's (kaizen.dags.factories); its id is <project>.monitor.
"""

from kaizen.dags.factories import monitor

monitor(__file__)
