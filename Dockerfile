# notibot API on the embedded default (in-memory store, inline jobs).
#   docker build -t notibot .   /   docker compose up --build
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin notibot \
    && rm -rf /src

USER notibot
WORKDIR /home/notibot

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('NOTIBOT_PORT', '8000') + '/health', timeout=4)"]

CMD ["notibot", "serve", "--host", "0.0.0.0"]
