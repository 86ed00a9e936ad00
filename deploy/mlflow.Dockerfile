# The team's MLflow tracking server (compose.yaml, service mlflow) in its own environment: MLflow,
# the PostgreSQL driver and boto3 at the project's versions (deploy/requirements-mlflow.lock).
FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 1000 mlflow
COPY deploy/requirements-mlflow.lock /tmp/requirements-mlflow.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements-mlflow.lock
USER mlflow
EXPOSE 5000
