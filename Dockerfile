# The product image of Electricity Optimizer: the eopt packages, the four DAGs and the locked
# dependency set (Airflow 3.3, MLflow 3.17, the models, Evidently). docker-compose.yml runs every
# Airflow service, the MLflow server, `eopt db upgrade` and `eopt metrics serve` from it, so the
# DAGs, the tasks they run and the registry server share one set of versions.
#
#   docker compose build            (or: docker build -t electricity-optimizer .)
#   docker run --rm electricity-optimizer eopt --help
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EOPT_HOME=/var/lib/eopt AIRFLOW_HOME=/opt/airflow
# libgomp1: LightGBM's and XGBoost's OpenMP runtime; curl: the compose healthchecks.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/eopt

# Dependencies first, in a layer of their own: a code change does not reinstall them.
COPY requirements.lock ./
# torch==2.13.0+cpu (pinned in the lock) comes from the PyTorch CPU wheel index.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.lock

# The project itself, editable: the code stays at /opt/eopt, where the settings find the bundled
# market data (data/markets) and Airflow finds the DAGs (AIRFLOW__CORE__DAGS_FOLDER=/opt/eopt/dags).
COPY . .
RUN pip install --no-cache-dir --no-deps -e .

# A non-root user owns only what the services write. The folders exist in the image so that the
# compose file's named volumes mounted on them start out owned by that user.
RUN useradd --create-home --uid 50000 --user-group eopt \
    && mkdir -p "$EOPT_HOME" "$AIRFLOW_HOME/logs" "$AIRFLOW_HOME/auth" /mlflow/artifacts \
    && chown -R eopt:eopt "$EOPT_HOME" "$AIRFLOW_HOME" /mlflow
USER eopt

CMD ["eopt", "--help"]
