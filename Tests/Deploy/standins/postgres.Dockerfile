# A stand-in for the official postgres:15-bookworm: Debian's PostgreSQL 15 behind an entrypoint that
# does what the official one does with POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB on first start.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
