# syntax=docker/dockerfile:1
# The REST service (`infinitetalk-gui serve`) on a slim Python image. The desktop app's Qt is
# left out: the service never imports it. ffmpeg comes with the imageio-ffmpeg wheel (a static
# build with libx264 and aac), which the app uses before any system ffmpeg.
#
#   docker build -t infinitetalk-gui-server .
#   docker run --rm -p 8080:8080 -e API_TOKEN=change-me -e RUNPOD_API_KEY=... \
#       -e RUNPOD_ENDPOINT_ID=... -v infinitetalk-data:/data infinitetalk-gui-server

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY infinitetalk_gui ./infinitetalk_gui
COPY resources ./resources
# The package's own dependency list (so this file never drifts from pyproject.toml), minus
# PySide6, plus the server extra.
RUN python - > /tmp/requirements.txt <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = project["dependencies"] + project["optional-dependencies"]["server"]
print("\n".join(d for d in wanted if not d.lower().startswith("pyside6")))
PY
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 app \
    && mkdir -p /data \
    && chown app:app /data
COPY --from=build /opt/venv /opt/venv
# Jobs, uploads and videos live in /data (a volume): a restarted container resumes the jobs
# the previous one was rendering.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    XDG_DATA_HOME=/data/data \
    XDG_CACHE_HOME=/data/cache \
    XDG_CONFIG_HOME=/data/config \
    XDG_STATE_HOME=/data/state \
    TEMP_DIR=/data/tmp \
    LOG_FORMAT=json
USER app
WORKDIR /home/app
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
# SIGTERM: stop taking jobs, park running ones in the store, exit within 10 s.
STOPSIGNAL SIGTERM
# Every interface inside the container: the service refuses to start without API_TOKEN.
# Add --demo to try it without a RunPod account.
ENTRYPOINT ["infinitetalk-gui", "serve", "--host", "0.0.0.0", "--port", "8080"]
