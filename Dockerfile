# vosx: export, segment and benchmark TrickVOS models (CPU build of torch, pinned converter stack).
# Build: docker build -t vosx .   Run: docker run --rm -v "$PWD:/work" vosx export model.pth -o /work/out
FROM python:3.11-slim

# adb from Debian for `vosx bench --device adb` (connect a phone with `--device /dev/bus/usb`);
# Mesa's Vulkan drivers (lavapipe, Mesa >= 25: Debian 13's, or 12's backports) so that
# `vosx export` runs its graphs on LiteRT's GPU accelerator.
RUN . /etc/os-release \
    && suite="$VERSION_CODENAME" \
    && if [ "$suite" = bookworm ]; then \
        suite=bookworm-backports; \
        echo "deb http://deb.debian.org/debian $suite main" > "/etc/apt/sources.list.d/$suite.list"; \
    fi \
    && apt-get update \
    && apt-get install -y --no-install-recommends adb \
    && apt-get install -y --no-install-recommends -t "$suite" mesa-vulkan-drivers \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

WORKDIR /opt/vosx
COPY constraints.txt pyproject.toml README.md ./
COPY vosx ./vosx
COPY model ./model
COPY export ./export
COPY tracker_runtime ./tracker_runtime
COPY android_bench ./android_bench
# The CPU wheel of torch comes from PyTorch's CPU index; everything else is pinned by constraints.txt.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -c constraints.txt '.[export]'

RUN useradd --create-home --uid 1000 vosx
USER 1000:1000
WORKDIR /work
VOLUME ["/work"]
ENTRYPOINT ["vosx"]
CMD ["--help"]
