# ordergate decision service: the shipped policy set, PostgreSQL from ORDERGATE_DATABASE_URL.
#   docker build -t ordergate .
#   docker compose up        (compose.yaml: the service and PostgreSQL)
FROM python:3.11-slim

# durable-rules (the connector's event correlation) builds from source: gcc and the C headers;
# the loader's C extension (engine/_fastload.c) also needs libyaml's
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libyaml-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY engine engine
COPY api api
COPY store store
COPY connector connector
COPY cli cli
COPY rules rules
RUN pip install --no-cache-dir . && rm -rf /src

# an empty working folder: `ordergate` uses the shipped policy set (mount your own at /srv/rules)
WORKDIR /srv
RUN useradd --system --home-dir /srv ordergate && chown ordergate /srv
USER ordergate
EXPOSE 8080
# listening beyond loopback needs access tokens: ORDERGATE_TOKENS_FILE or ORDERGATE_TOKENS_<ROLE>
CMD ["ordergate", "serve", "--host", "0.0.0.0", "--port", "8080"]
