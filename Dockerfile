# One image for web (gunicorn), Celery worker and Celery beat; see docker-compose.yml.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 linli

# The PDF receipts' Chinese font (settings.RECEIPT_PDF_FONT), embedded in each receipt.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

COPY . .
RUN pip install -e . \
    # Static files are collected into the image and served by WhiteNoise (hashed, compressed).
    && DEBUG=false SECRET_KEY=collectstatic-only-build-key python manage.py collectstatic --noinput \
    && mkdir -p /app/var/media && chown -R linli /app/var

USER linli
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
