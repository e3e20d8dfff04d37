# Odradek in a container. The base image is a build argument: an official Python
# slim image by default; `make docker-base` builds a local one from Debian's packages
# for machines that cannot reach an image registry (any base with python3 and its venv
# module, Python >= 3.11, works).
#
# Wheels in build/docker-wheels (made on the host by `make docker-image`, so for the host's
# Python version, which must be the image's) are installed without network access; without
# them the image installs from the source tree and PyPI.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="odradek"

ENV VIRTUAL_ENV=/opt/odradek \
    PATH=/opt/odradek/bin:$PATH \
    PYTHONUNBUFFERED=1

RUN python3 -m venv /opt/odradek \
 && groupadd --system --gid 10001 odradek \
 && useradd --system --uid 10001 --gid odradek --home-dir /var/lib/odradek --no-create-home \
        --shell /usr/sbin/nologin odradek \
 && mkdir -p /var/lib/odradek \
 && chown odradek:odradek /var/lib/odradek

# The context holds only what .dockerignore lets through: the sources and the wheels.
COPY . /tmp/odradek-src
RUN cd /tmp/odradek-src \
 && if ls build/docker-wheels/odradek-*.whl >/dev/null 2>&1; then \
        pip install --no-cache-dir --no-index --find-links build/docker-wheels odradek; \
    else \
        pip install --no-cache-dir .; \
    fi \
 && rm -rf /tmp/odradek-src \
 && odradek serve --help >/dev/null

USER odradek
WORKDIR /var/lib/odradek
VOLUME /var/lib/odradek
EXPOSE 9092

# Exec form: the broker is PID 1 and gets SIGTERM itself (it stops within 5 s, status 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["odradek"]
CMD ["serve", "--data-dir", "/var/lib/odradek", "--listen", "0.0.0.0:9092", "--advertised", "127.0.0.1:9092"]

# Ready: registered, caught up with the metadata log and serving its listeners. /readyz
# answers 503 until then, which urlopen raises (python, since the image has no curl or nc).
# The HTTP listener (http.listener) stays on the container's loopback: nothing is exposed.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9404/readyz', timeout=3)"]
