# One image for the web server, the Celery workers and Celery beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FATBUILDR_DATA_DIR=/var/lib/fatbuildr

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --home-dir /var/lib/fatbuildr --create-home fatbuildr \
    && mkdir -p /var/lib/fatbuildr && chown fatbuildr: /var/lib/fatbuildr

USER fatbuildr
EXPOSE 5000
CMD ["gunicorn", "fatbuildr_site.wsgi:application", "--bind", "0.0.0.0:5000", \
     "--worker-class", "gthread", "--workers", "2", "--threads", "16", "--access-logfile", "-"]
