# One image for the web server, the Celery workers and Celery beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FATBUILDR_DATA_DIR=/var/lib/fatbuildr

# gpg makes and uses the instance keyrings; reprepro, rpm and createrepo_c keep the
# registries; mmdebstrap makes the build roots, bubblewrap isolates the builds, debchange
# writes deb changelogs.
RUN apt-get update && apt-get install -y --no-install-recommends \
        gnupg gpg-agent reprepro rpm createrepo-c mmdebstrap bubblewrap devscripts \
        libdistro-info-perl dpkg-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Runtime requirements only: tests, lint and type checks are in requirements-dev.txt.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# The web server runs as `fatbuildr` (fixed ids, for bind mounts), the workers as root. The
# data root belongs to its user and group: the web server creates build workspaces there,
# in folders the workers make group-writable (README "Permissions").
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && groupadd --system --gid 10001 fatbuildr \
    && useradd --system --uid 10001 --gid fatbuildr --home-dir /var/lib/fatbuildr \
        --no-create-home --shell /usr/sbin/nologin fatbuildr \
    && install -d -o fatbuildr -g fatbuildr -m 0755 /var/lib/fatbuildr

USER fatbuildr
EXPOSE 5000
ENV FATBUILDR_BIND=0.0.0.0:5000
CMD ["scripts/serve"]
