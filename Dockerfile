# The image behind docker-compose.yaml: the official Airflow 3.3 image plus this project's exact lock.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
ENV PYTHONPATH=/opt/airflow/plugins:/opt/airflow
