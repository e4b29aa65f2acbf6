# One image for the three gRPC services, the Spark jobs and the data tools.
# The local stack (make up) does not need it; compose.yaml builds it.
FROM python:3.11-slim-bookworm

# Java runs Spark (streaming and ALS jobs) in local mode inside the container.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md .env ./
COPY recsys ./recsys
COPY recommender_svc ./recommender_svc
COPY event_svc ./event_svc
COPY profile_svc ./profile_svc
COPY batch ./batch
COPY stack ./stack
COPY envoy ./envoy
RUN pip install --no-cache-dir '.[services,spark]'

ENV PYTHONUNBUFFERED=1
EXPOSE 50051 50052 50053
CMD ["python", "-m", "recommender_svc"]
