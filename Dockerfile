# chargery's image: the Home Assistant app (the Supervisor builds it from this folder, with
# BUILD_FROM from build.yaml) and the same image for Docker and Podman users
# (`docker build -t chargery .`). Any image with Python 3.11+ and pip will do as the base.
ARG BUILD_FROM=python:3.12-slim
FROM $BUILD_FROM

ARG BUILD_VERSION
LABEL org.opencontainers.image.title="Chargery BMS" \
      org.opencontainers.image.description="Chargery BMS8T/16T/24T to MQTT, with Home Assistant discovery" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${BUILD_VERSION}"

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# chargery from this checkout; pyserial and paho-mqtt from PyPI.
COPY pyproject.toml README.md /tmp/chargery/
COPY chargerybms /tmp/chargery/chargerybms
RUN python3 -m pip install /tmp/chargery && rm -rf /tmp/chargery

# The app's options, the energy meters and the cell-health evidence (a volume for Docker).
VOLUME /data
# No shell, no init: the daemon is PID 1 (the app's init: false) and stops on SIGTERM.
ENTRYPOINT ["chargery", "app"]
