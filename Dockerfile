# One image for every role: web (default CMD), Celery worker, Celery beat and the migrate job.
# See docker-compose.yml for how the roles are started, and README.md ("Deploying at scale").
FROM python:3.11-slim

# PYTHONPATH: the copied source in /app wins over the copy `pip install .` puts in site-packages,
# so gunicorn, celery and manage.py all import the same modules (and BASE_DIR is /app).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=hub.settings.production

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps))" \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
# The project itself (no dev extras); its dependencies are already in place.
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# Static files are collected into the image and served by WhiteNoise. The values below exist only
# so the production settings import at build time: nothing connects to them, nothing is written
# under var/, and none of them reaches the running container (set the real ones at run time).
RUN HUB_SECRET_KEY="build-only-not-a-secret-build-only-not-a-secret-00" \
    HUB_FIELD_KEYS="YnVpbGQtb25seS1ub3QtYS1zZWNyZXQtYnVpbGQtb24=" \
    DATABASE_URL="postgres://build:build@127.0.0.1:5432/build" \
    REDIS_URL="redis://127.0.0.1:6379/0" \
    python manage.py collectstatic --noinput -v 0

RUN useradd --system --create-home --home-dir /home/hub --uid 10001 hub \
    && mkdir -p /app/var \
    && chown hub:hub /app/var
USER hub

EXPOSE 8000

CMD ["gunicorn", "hub.asgi:application", "-k", "hub.server.UvicornWorker", "-b", "0.0.0.0:8000", "--workers", "2"]
