# taskapp: gunicorn serving wsgi:app, with the migrations applied first (docs/deploying.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The install step of docs/deploying.md (pip install .), from a copy of the source removed
# afterwards: the app runs from site-packages, so Flask's instance folder is
# /usr/local/var/taskapp-instance, the one directory the app's user may write to.
COPY . /src
RUN pip install /src \
 && rm -rf /src \
 && useradd --system --user-group --uid 10001 --no-create-home --shell /usr/sbin/nologin taskapp \
 && install -d -o taskapp -g taskapp /usr/local/var/taskapp-instance

# What the commands read from the working directory: gunicorn's settings and the migrations.
WORKDIR /app
COPY gunicorn.conf.py ./
COPY migrations ./migrations

USER taskapp
ENV TASKAPP_ENV=production \
    GUNICORN_BIND=0.0.0.0:8000
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

# exec: gunicorn's master gets the container's signals (SIGTERM: graceful shutdown).
CMD ["sh", "-c", "flask --app wsgi db upgrade && exec gunicorn -c gunicorn.conf.py wsgi:app"]
