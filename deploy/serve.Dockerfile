# candle-ml's server (compose.yaml, service serve): the project at requirements.lock's versions,
# runtime and the s3/postgres extras only (deploy/requirements-serve.lock), no test tools.
FROM python:3.11-slim-bookworm
# libgomp: XGBoost's and scikit-learn's OpenMP runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 candle
WORKDIR /app
COPY deploy/requirements-serve.lock deploy/requirements-serve.lock
RUN pip install --no-cache-dir --require-hashes -r deploy/requirements-serve.lock
COPY pyproject.toml README.md LICENSE ./
COPY candle_ml candle_ml
COPY stages stages
COPY serve serve
RUN pip install --no-cache-dir --no-deps . && mkdir -p data && chown candle data
USER candle
EXPOSE 8001
# /app/data is a volume: data/candles (from `dvc pull`) for /review, data/annotations/feedback.jsonl
# and data/history/ written by the server
CMD ["candle-ml", "serve", "--host", "0.0.0.0", "--port", "8001"]
