"""Ground Truth labeling jobs for Apache Airflow: hook, operators, sensor, trigger, links, and the data stages."""
