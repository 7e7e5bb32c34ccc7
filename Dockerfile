# AuthSec Server image: one image for web (uvicorn), worker and beat (celery).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    STATIC_ROOT=/app/static-collected DJANGO_SETTINGS_MODULE=authsec_site.settings

WORKDIR /app
COPY requirements.txt .
RUN pip install --require-hashes -r requirements.txt
COPY . .

RUN useradd --system --home /app authsec && chown -R authsec /app
USER authsec

EXPOSE 8000
CMD ["uvicorn", "authsec_site.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--lifespan", "on", "--no-proxy-headers"]
