# A stand-in for the official haproxy:2.6-bookworm: Debian's HAProxy 2.6 reading the official
# image's config path.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends haproxy && rm -rf /var/lib/apt/lists/*
CMD ["haproxy", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
