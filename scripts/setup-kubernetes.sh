#!/usr/bin/env bash
# A real Kubernetes 1.20 on this machine, on loopback: etcd, kube-apiserver, the controller
# manager, the scheduler and a kubelet whose pods run on the local Docker Engine (dockershim).
# Built once per machine from Debian's `kubernetes` source package with Debian's Go (cached in
# $FAAS_K8S_CACHE, keyed by version), started with its state in $FAAS_K8S_HOME. Idempotent: what
# is built is not built again, what runs is not started again. Prints the kubeconfig's path.
#
#   scripts/setup-kubernetes.sh          # build if needed, start, wait until a node is Ready
#   scripts/setup-kubernetes.sh stop     # stop what it started (by the pids it wrote)
#
# Three local fixes: the sandbox's oom_score_adj is 0 (a negative one is refused here); the pause
# image is built from its C source; and the vendored modern-go/reflect2 1.0.1, which faults under
# Go 1.18 and later (the API server and the kubelet crash in json-iterator's map encoder), is
# replaced by Debian's 1.0.2, which has the fix and the same API.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

version=1.20.2
cache=${FAAS_K8S_CACHE:-/var/cache/faas-k8s/$version}
home=${FAAS_K8S_HOME:-/var/lib/faas-test/k8s}
etcd_port=${FAAS_K8S_ETCD_PORT:-12379}
api_port=${FAAS_K8S_API_PORT:-16443}
bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

built() {
  local b
  for b in "${bins[@]}"; do [ -x "$cache/bin/$b" ] || return 1; done
}

# The source package through a private apt configuration: the host's own Debian sources, as
# deb-src (so no host is written here).
fetch_source() {
  [ -d "$cache/src/kubernetes" ] && return 0
  faas_apt_install dpkg-dev
  local apt="$cache/apt"
  mkdir -p "$apt/lists/partial" "$apt/sources" "$cache/src"
  [ -r /etc/apt/sources.list.d/debian.sources ] || { faas_say "no /etc/apt/sources.list.d/debian.sources to take Debian's sources from"; return 1; }
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$apt/sources/debian-src.sources"
  local opts=(-o "Dir::Etc::SourceParts=$apt/sources" -o Dir::Etc::SourceList=/dev/null -o "Dir::State::Lists=$apt/lists")
  faas_say "fetching Debian's kubernetes $version source package"
  apt-get "${opts[@]}" update -qq >/dev/null
  (cd "$cache/src" && apt-get "${opts[@]}" source --download-only -qq kubernetes >/dev/null)
  local orig
  orig=$(ls "$cache/src"/kubernetes_*.orig.tar.* | head -1)
  mkdir -p "$cache/src/kubernetes.tmp"
  tar -xf "$orig" -C "$cache/src/kubernetes.tmp" --strip-components=1
  mv "$cache/src/kubernetes.tmp" "$cache/src/kubernetes"
}

build() {
  built && return 0
  faas_apt_install golang-go rsync etcd-server gcc libc6-dev make golang-github-modern-go-reflect2-dev
  fetch_source
  local src="$cache/src/kubernetes"
  rsync -a --delete /usr/share/gocode/src/github.com/modern-go/reflect2/ "$src/vendor/github.com/modern-go/reflect2/"
  # A sandbox's oom_score_adj of -998 is refused in this container: 0.
  sed -i 's/defaultSandboxOOMAdj *int *= *-998/defaultSandboxOOMAdj int = 0/' "$src/pkg/kubelet/dockershim/docker_sandbox.go"
  mkdir -p "$cache/gopath/src/k8s.io" "$cache/bin"
  ln -sfn "$src" "$cache/gopath/src/k8s.io/kubernetes"
  faas_say "building kubernetes $version (about 5 minutes, once per machine)"
  (cd "$cache/gopath/src/k8s.io/kubernetes" &&
    GOPATH="$cache/gopath" GO111MODULE=off CGO_ENABLED=0 GOFLAGS= KUBE_VERBOSE=0 \
      make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet" >"$cache/build.log" 2>&1) ||
    { faas_say "the build failed; see $cache/build.log"; return 1; }
  local b
  for b in "${bins[@]}"; do
    install -m 0755 "$src/_output/bin/$b" "$cache/bin/$b"
  done
}

# The pod sandbox image kubelet asks for, from its C source, FROM scratch.
pause_image() {
  faas_image_present k8s.gcr.io/pause:3.2 && return 0
  local dir
  dir=$(mktemp -d)
  gcc -Os -static -o "$dir/pause" "$cache/src/kubernetes/build/pause/linux/pause.c"
  printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$dir/Dockerfile"
  docker build -q -t k8s.gcr.io/pause:3.2 --label io.faas.seed="$FAAS_SEED_VERSION" "$dir" >/dev/null
  rm -rf "$dir"
}

running() { [ -r "$home/$1.pid" ] && kill -0 "$(cat "$home/$1.pid")" 2>/dev/null; }

# Starts a component in the background unless it runs; its log beside its pid.
launch() {
  local name=$1
  shift
  running "$name" && return 0
  nohup "$@" >"$home/$name.log" 2>&1 &
  echo $! >"$home/$name.pid"
}

wait_for() {
  local what=$1 deadline=$(( $(date +%s) + $2 ))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then faas_say "$what did not come up; see $home/*.log"; return 1; fi
    sleep 0.5
  done
}

certificates() {
  [ -r "$home/pki/ca.crt" ] && return 0
  mkdir -p "$home/pki"
  local p="$home/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=faas-test-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$p/apiserver.key" -out "$p/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes.default.svc\n' >"$p/san.ext"
  openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -days 3650 -extfile "$p/san.ext" -out "$p/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  local token
  token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s,admin,admin,system:masters\n' "$token" >"$p/tokens.csv"
  chmod 0600 "$p"/*.key "$p/tokens.csv"
  cat >"$home/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: faas-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $p/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: faas-test
  context: {cluster: faas-test, user: admin, namespace: default}
current-context: faas-test
EOF
  chmod 0600 "$home/kubeconfig"
}

api_ready() { curl -fsS --cacert "$home/pki/ca.crt" -H "Authorization: Bearer $(cut -d, -f1 "$home/pki/tokens.csv")" "https://127.0.0.1:$api_port/readyz"; }
node_ready() {
  running kubelet || return 1
  curl -fsS --cacert "$home/pki/ca.crt" -H "Authorization: Bearer $(cut -d, -f1 "$home/pki/tokens.csv")" \
    "https://127.0.0.1:$api_port/api/v1/nodes/localhost" | tr -d ' \n' | grep -q '"type":"Ready","status":"True"'
}

start() {
  faas_start_docker
  build
  pause_image
  mkdir -p "$home/etcd" "$home/kubelet"
  certificates
  local p="$home/pki" b="$cache/bin"
  launch etcd etcd --data-dir "$home/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))"
  launch kube-apiserver "$b/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --token-auth-file "$p/tokens.csv" --authorization-mode Node,RBAC \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.0.0.0/24 \
    --kubelet-preferred-address-types Hostname --allow-privileged=true
  wait_for "kube-apiserver" 120 api_ready
  launch kube-controller-manager "$b/kube-controller-manager" --kubeconfig "$home/kubeconfig" \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" --use-service-account-credentials \
    --bind-address 127.0.0.1 --leader-elect=false
  launch kube-scheduler "$b/kube-scheduler" --kubeconfig "$home/kubeconfig" --bind-address 127.0.0.1 --leader-elect=false
  # The kubelet shares the machine's Docker Engine: it must never collect images (the tests'
  # seeded images are unused most of the time) nor evict for a disk the tests fill on purpose.
  launch kubelet "$b/kubelet" --kubeconfig "$home/kubeconfig" --container-runtime docker \
    --hostname-override localhost --root-dir "$home/kubelet" --cert-dir "$home/kubelet/pki" \
    --pod-infra-container-image k8s.gcr.io/pause:3.2 --fail-swap-on=false --cgroup-driver cgroupfs \
    --address 127.0.0.1 --read-only-port 0 --anonymous-auth=true --authorization-mode AlwaysAllow \
    --cgroups-per-qos=false --enforce-node-allocatable= --register-node=true \
    --eviction-hard "memory.available<100Mi,nodefs.available<1%,imagefs.available<1%" --image-gc-high-threshold 100 --image-gc-low-threshold 99
  wait_for "the kubelet's node" 120 node_ready
  faas_say "kubernetes $version ready at https://127.0.0.1:$api_port (kubeconfig: $home/kubeconfig)"
  printf '%s\n' "$home/kubeconfig"
}

stop() {
  local c
  for c in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if running "$c"; then kill "$(cat "$home/$c.pid")" 2>/dev/null || true; fi
    rm -f "$home/$c.pid"
  done
  # The pods' containers outlive the kubelet: remove those its dockershim made.
  local pods
  pods=$(docker ps -aq --filter label=io.kubernetes.docker.type 2>/dev/null || true)
  if [ -n "$pods" ]; then docker rm -f $pods >/dev/null; fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  build) build && pause_image ;;
  *) echo "usage: $0 [start|stop|build]" >&2; exit 2 ;;
esac
