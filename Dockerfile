# oborod in a container. Build stage: the package list of
# scripts/packages-build.txt (kept identical by tests/e2e/test_packaging.py).
# Final stage: scripts/packages-runtime.txt, a non-root user, data volume.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    gcc libc6-dev meson ninja-build pkg-config \
    libavformat-dev libavcodec-dev libavutil-dev libswscale-dev \
    libevent-dev libssl-dev libraft-dev libuv1-dev check redis-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN meson setup /build -Dbuildtype=release && ninja -C /build cmd/oborod

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    libevent-2.1-7 libevent-pthreads-2.1-7 libevent-openssl-2.1-7 libssl3 \
    libraft2 libuv1 libavformat59 libavcodec59 libavutil57 libswscale6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/oboro --create-home oboro
COPY --from=build /build/cmd/oborod /usr/local/bin/oborod
USER oboro
WORKDIR /var/lib/oboro
VOLUME ["/var/lib/oboro"]
EXPOSE 1935 6379 7379 8080
ENTRYPOINT ["/usr/local/bin/oborod", "--dir", "/var/lib/oboro/data"]
# Listening beyond loopback is an operator's choice: docker run ... --bind 0.0.0.0
