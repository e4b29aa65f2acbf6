# One image for the three gRPC services, the Spark jobs and the data tools.
# The local stack (make up) does not need it; compose.yaml builds it.
FROM python:3.11-slim-bookworm AS app

# Java runs Spark (streaming and ALS jobs) in local mode inside the container.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md .env ./
COPY constraints ./constraints
COPY recsys ./recsys
COPY buf ./buf
COPY recommender_svc ./recommender_svc
COPY event_svc ./event_svc
COPY profile_svc ./profile_svc
COPY batch ./batch
COPY stack ./stack
COPY envoy ./envoy
COPY dags ./dags
RUN pip install --no-cache-dir -c constraints/services.txt '.[services,spark]'
# Every jar a Spark job adds (the Kafka source, S3A for the archive) is in the image, checked
# against Maven Central's SHA-1s at build time: no job downloads anything when it starts, so
# the streaming container runs on the internal network alone (batch/common/jars.py).
RUN python -m batch.common.jars /opt/recsys/jars streaming s3a
ENV SPARK_JARS_DIR=/opt/recsys/jars \
    SPARK_JARS_OFFLINE=true

# numpy's BLAS on one thread (see .env: small solves per request and per user).
ENV PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1
EXPOSE 30051 30052 30053
CMD ["python", "-m", "recommender_svc"]

# Airflow runs the daily DAG; it lives in its own venv (its pins clash with the services'),
# and its tasks run the batch jobs with the app's interpreter (RECSYS_PYTHON).
FROM app AS airflow
RUN python -m venv /opt/airflow-venv \
 && /opt/airflow-venv/bin/pip install --no-cache-dir -c constraints/airflow.txt apache-airflow==3.3.2
ENV RECSYS_PYTHON=/usr/local/bin/python \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/app/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=false
EXPOSE 8080
CMD ["/opt/airflow-venv/bin/airflow", "standalone"]
