# The product image: the eopt packages, the four DAGs and the locked dependency set.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EOPT_HOME=/var/lib/eopt AIRFLOW_HOME=/opt/airflow
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/eopt
COPY requirements.lock ./
# torch==2.13.0+cpu (pinned in the lock) comes from the PyTorch CPU wheel index.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.lock
COPY . .
RUN pip install --no-cache-dir --no-deps -e . && useradd --create-home --uid 50000 eopt \
    && mkdir -p "$EOPT_HOME" "$AIRFLOW_HOME" && chown -R eopt "$EOPT_HOME" "$AIRFLOW_HOME"
USER eopt
ENTRYPOINT ["eopt"]
CMD ["--help"]
