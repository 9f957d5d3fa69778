# studio-operator image: python:3.11-slim, pinned runtime dependencies (requirements.lock), the
# project's wheel, non-root user 65532, the console script as entrypoint.
#   docker build -t studio-operator:0.1.0 .
# The build machines have no Docker; tests/integration/test_install.py checks the same steps
# (wheel build, install into a fresh virtualenv, console scripts run).

# ---- build the wheel
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir "build==1.6.1"
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m build --wheel --outdir /dist

# ---- runtime
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --no-deps -r /tmp/requirements.lock
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir --no-deps /tmp/*.whl && rm -f /tmp/*.whl /tmp/requirements.lock \
    && python -c "import studio_operator.__main__, studio_operator.cli.main"
RUN groupadd --gid 65532 studio && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin studio
USER 65532:65532
WORKDIR /tmp
EXPOSE 8089 8090 9443
ENTRYPOINT ["studio-operator", "run"]
