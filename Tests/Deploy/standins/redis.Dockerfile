# A stand-in for the official redis:7-bookworm (no registry here): Debian's redis-server, run as the
# official image runs it (`redis-server` and its arguments).
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*
USER redis
WORKDIR /data
CMD ["redis-server"]
