#!/usr/bin/env bash
# svcnat demo (`make demo`, as root, after `make deps build`).
#
# Builds a throwaway lab of network namespaces with the address plan of
# integration/netlab (see its doc.go):
#
#   client   192.0.2.2   <-> node 192.0.2.1      (cli0)
#   backend-i 10.64.(i+1).2 <-> node 10.64.(i+1).1 (be<i>), i = 0..2
#   uplink   198.51.100.2 <-> node 198.51.100.1  (up0; the node's default
#                                                 route, answers nothing)
#
# then tells the nginx story with svcnat working inside the node namespace:
# a ClusterIP service, a NodePort with external policy Cluster, then Local,
# the conntrack entry, show, rollback and destroy, then svcnat reconcile
# taking a backend whose server stopped out of the rules and putting it
# back. Real requests are sent at every step and the answers (which
# backend, which source it saw) printed.
#
# Every namespace, process and file it makes is removed on exit, also when
# interrupted. The host's own namespace is never touched: veth pairs are
# created with both ends already inside lab namespaces.
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin"
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SVCNAT=bin/svcnat # relative to $ROOT, so the printed commands read well
GO=${GO:-go}

P="svcnat-demo-$$-" # namespace prefix, unique per run
CLIENT=${P}client
NODE=${P}node
UPLINK=${P}uplink
BACKENDS=("${P}backend-0" "${P}backend-1" "${P}backend-2")

NSES=()    # namespaces created so far (cleanup deletes exactly these)
PIDS=()    # server processes started so far
TMP=""     # temp dir: labecho, configs, svcnat state
REMOVED=0  # namespaces removed by cleanup
CLEANED=0

# --- output helpers ----------------------------------------------------------

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
  B=$'\e[1m' DIM=$'\e[2m' R=$'\e[0m'
else
  B="" DIM="" R=""
fi

step() { printf '\n%s==> %s%s\n' "$B" "$*" "$R"; }
note() { printf '%s# %s%s\n' "$DIM" "$*" "$R"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# show prints a command the way a reader would type it.
show() {
  local out="" a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+="$a "; else out+="$(printf '%q' "$a") "; fi
  done
  printf '%s$ %s%s\n' "$B" "${out% }" "$R"
}

# run prints a command, then runs it.
run() { show "$@"; "$@"; }

# sv runs svcnat against the lab's node namespace with the demo's own state
# directory; the flags follow the command name.
sv() {
  local cmd=$1
  shift
  run "$SVCNAT" "$cmd" --netns "$NODE" --state-dir "$TMP/state" "$@"
}

# nsx NS CMD... runs a command inside a namespace without printing it.
nsx() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# --- cleanup ------------------------------------------------------------------

cleanup() {
  ((CLEANED)) && return 0
  CLEANED=1
  trap '' INT TERM # finish cleaning even if the user presses Ctrl-C again
  local pid ns
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for ns in "${NSES[@]}"; do
    # Anything still running inside a lab namespace was started by this demo.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    if ip netns del "$ns" 2>/dev/null; then
      REMOVED=$((REMOVED + 1))
    elif [[ -e /var/run/netns/$ns || -e /run/netns/$ns ]]; then
      printf 'demo: could not remove namespace %s\n' "$ns" >&2
    fi
  done
  if [[ -n $TMP && -d $TMP ]]; then
    rm -rf -- "$TMP"
  fi
}

on_exit() {
  local rc=$?
  cleanup
  if ((rc != 0)); then
    printf '\ndemo failed (exit %d); removed %d namespaces\n' "$rc" "$REMOVED" >&2
  fi
  exit "$rc"
}

# remove_stale deletes namespaces left by demo runs that were killed with
# SIGKILL (their pid is gone), so they do not pile up.
remove_stale() {
  local ns pid p
  while read -r ns _; do
    [[ $ns =~ ^svcnat-demo-([0-9]+)- ]] || continue
    pid=${BASH_REMATCH[1]}
    ((pid == $$)) && continue
    kill -0 "$pid" 2>/dev/null && continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null && note "removed $ns, left behind by an earlier demo run"
  done < <(ip netns list 2>/dev/null)
}

# --- the lab -------------------------------------------------------------------

new_ns() {
  local ns=$1 forward=$2
  NSES+=("$ns") # recorded first: cleanup tolerates names that never made it
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  # New namespaces take some defaults from the host; pin what routing
  # depends on. Peers must not route; the node does.
  nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    "net.ipv4.ip_forward=$forward"
}

# attach NS NODELINK PREFIX(a.b.c) GATEWAY(yes|no): a veth pair between the
# node (NODELINK, PREFIX.1) and NS (eth0, PREFIX.2), created with both ends
# inside their namespaces.
attach() {
  local ns=$1 link=$2 net=$3 gw=$4
  new_ns "$ns" 0
  ip -n "$NODE" link add "$link" type veth peer name eth0 netns "$ns"
  ip -n "$NODE" addr add "$net.1/24" dev "$link"
  ip -n "$ns" addr add "$net.2/24" dev eth0
  ip -n "$NODE" link set "$link" up
  ip -n "$ns" link set eth0 up
  if [[ $gw == yes ]]; then
    ip -n "$ns" route add default via "$net.1"
  fi
}

build_lab() {
  new_ns "$NODE" 1
  # Redirects share a rate limit with REJECT's ICMP errors.
  nsx "$NODE" sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
  attach "$CLIENT" cli0 192.0.2 yes
  local i
  for i in 0 1 2; do
    attach "${BACKENDS[i]}" "be$i" "10.64.$((i + 1))" yes
  done
  # A sink: no forwarding and no route back, so nothing is ever answered.
  attach "$UPLINK" up0 198.51.100 no
  ip -n "$NODE" route add default via 198.51.100.2
}

# SERVER[i] is the pid of backend i's server.
SERVER=()

# start_server I starts backend I's server (HTTP :80, UDP :53).
start_server() {
  local i=$1
  ip netns exec "${BACKENDS[i]}" "$TMP/labecho" serve -name "backend-$i" -http :80 -udp :53 &
  PIDS+=($!)
  SERVER[i]=$!
}

# kill_server I stops backend I's server.
kill_server() {
  local i=$1
  printf '%s$ kill %s%s   %s# backend-%d'"'"'s server%s\n' "$B" "${SERVER[i]}" "$R" "$DIM" "$i" "$R"
  kill -TERM "${SERVER[i]}"
  wait "${SERVER[i]}" 2>/dev/null || true
}

# await_log PATTERN SECONDS: waits until the reconcile log (from the last
# line matched on) has a line matching PATTERN.
LOGSEEN=0
await_log() {
  local pattern=$1 deadline=$((SECONDS + $2)) n
  while :; do
    n=$(tail -n +$((LOGSEEN + 1)) "$TMP/reconcile.log" | grep -n -m1 -F -- "$pattern" | cut -d: -f1 || true)
    if [[ -n $n ]]; then
      LOGSEEN=$((LOGSEEN + n))
      return 0
    fi
    ((SECONDS < deadline)) || { cat "$TMP/reconcile.log" >&2; die "no reconcile log line with $pattern within $2s"; }
    sleep 0.1
  done
}

start_servers() {
  local i
  for i in 0 1 2; do
    start_server "$i"
  done
  # Poll from the node: proves the servers listen and the veths carry.
  local deadline=$((SECONDS + 15)) ok
  while :; do
    ok=1
    for i in 0 1 2; do
      nsx "$NODE" "$TMP/labecho" get "http://10.64.$((i + 1)).2/" >/dev/null 2>&1 || { ok=0; break; }
      nsx "$NODE" "$TMP/labecho" udp "10.64.$((i + 1)).2:53" >/dev/null 2>&1 || { ok=0; break; }
    done
    ((ok)) && break
    for i in "${!PIDS[@]}"; do
      kill -0 "${PIDS[i]}" 2>/dev/null || die "the server in ${BACKENDS[i]} exited"
    done
    ((SECONDS < deadline)) || die "backends not answering after 15s"
    sleep 0.1
  done
}

# --- traffic -------------------------------------------------------------------

NAMES=() # backend names of the last requests
SRCS=()  # source addresses those backends saw

# requests NS COUNT get|udp TARGET: sends COUNT requests from NS, printing
# each answer; fails if any goes unanswered.
requests() {
  local ns=$1 n=$2 mode=$3 target=$4 k out name src who
  printf '%s$ ip netns exec %s labecho %s %s%s   %s# %d times%s\n' "$B" "$ns" "$mode" "$target" "$R" "$DIM" "$n" "$R"
  NAMES=() SRCS=()
  for ((k = 1; k <= n; k++)); do
    if ! out=$(nsx "$ns" "$TMP/labecho" "$mode" "$target" 2>&1); then
      printf '  %d: FAILED: %s\n' "$k" "$out"
      die "request $k from $ns to $target got no answer"
    fi
    read -r name src <<<"$out"
    src=${src%:*}
    case $src in
    192.0.2.2) who="the client itself: source preserved" ;;
    10.64.*.1) who="the node's address on that link: masqueraded" ;;
    *) who="" ;;
    esac
    printf '  %d: answered by %-9s  it saw %-21s %s\n' "$k" "$name" "${out#* }" "${who:+($who)}"
    NAMES+=("$name") SRCS+=("$src")
  done
  printf '  answered by: %s\n' "$(printf '%s\n' "${NAMES[@]}" | sort | uniq -c | awk '{printf "%s%s x%d", sep, $2, $1; sep=", "}')"
}

# expect_sources_not ADDR / expect_sources ADDR / expect_names NAME...
expect_sources() {
  local s
  for s in "${SRCS[@]}"; do [[ $s == "$1" ]] || die "expected every backend to see source $1, one saw $s"; done
}
expect_sources_not() {
  local s
  for s in "${SRCS[@]}"; do [[ $s != "$1" ]] || die "expected the source to be masqueraded, a backend saw $s"; done
}
expect_names() {
  local n ok w
  for n in "${NAMES[@]}"; do
    ok=0
    for w in "$@"; do [[ $n == "$w" ]] && ok=1; done
    ((ok)) || die "expected only $* to answer, $n did"
  done
}
expect_one_name() {
  local n
  for n in "${NAMES[@]}"; do [[ $n == "${NAMES[0]}" ]] || die "expected one backend for every query (affinity), got ${NAMES[0]} and $n"; done
}

# plan_exitcode ARGS...: plan --detailed-exitcode, reporting the code.
plan_exitcode() {
  local rc=0
  sv plan --detailed-exitcode "$@" || rc=$?
  case $rc in
  0) note "exit code 0: no changes" ;;
  2) die "plan --detailed-exitcode: exit code 2 (changes) right after apply; expected 0" ;;
  *) die "plan --detailed-exitcode failed (exit code $rc)" ;;
  esac
}

# no_owned_chains: neither iptables backend of the node holds SVCNAT rules.
no_owned_chains() {
  local tool n found=0
  for tool in iptables-nft-save iptables-legacy-save; do
    command -v "$tool" >/dev/null || continue
    printf '%s$ ip netns exec %s %s | grep -c SVCNAT%s\n' "$B" "$NODE" "$tool" "$R"
    n=$(nsx "$NODE" "$tool" 2>/dev/null | grep -c SVCNAT || true)
    echo "$n"
    ((n == 0)) || found=1
  done
  ((found == 0)) || die "SVCNAT rules left in the node namespace after destroy"
}

# --- the story -----------------------------------------------------------------

main() {
  cd "$ROOT"
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces); run: sudo make demo"
  [[ -x $SVCNAT ]] || die "$SVCNAT missing; run: make build (or make demo)"
  local t
  for t in ip iptables conntrack "$GO"; do
    command -v "$t" >/dev/null || die "$t not found; run: make deps"
  done

  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  remove_stale
  TMP=$(mktemp -d /tmp/svcnat-demo.XXXXXX)
  mkdir -p "$TMP/state" "$TMP/step1" "$TMP/step3"
  # The namespace locks go with the rest of the demo, not in /run/svcnat.
  export SVCNAT_RUNTIME_DIR="$TMP/run"

  step "Setting up the lab"
  run "$GO" build -o "$TMP/labecho" ./integration/cmd/labecho
  build_lab
  start_servers
  note "namespaces: ${NSES[*]}"
  note "client 192.0.2.2 -> node 192.0.2.1 (node1); backends 10.64.1.2 10.64.2.2 (node1) 10.64.3.2 (node2)"
  note "svcnat runs in $NODE with state in $TMP/state"

  step "The configuration"
  sv validate -c examples

  # ---------------------------------------------------------------------------
  step "Step 1: a ClusterIP service"
  cp examples/settings.hcl "$TMP/step1/"
  {
    echo '# nginx as a ClusterIP service (generated from examples/nginx.hcl by the demo).'
    sed -e '/^[[:space:]]*#/d' \
      -e 's/^\([[:space:]]*type[[:space:]]*=[[:space:]]*\)"NodePort"/\1"ClusterIP"/' \
      -e '/^[[:space:]]*node_port[[:space:]]*=/d' examples/nginx.hcl
  } >"$TMP/step1/nginx.hcl"
  if ! grep -q '"ClusterIP"' "$TMP/step1/nginx.hcl" || grep -q node_port "$TMP/step1/nginx.hcl"; then
    die "could not derive a ClusterIP variant from examples/nginx.hcl"
  fi
  run diff -u --label examples/nginx.hcl --label step1/nginx.hcl examples/nginx.hcl "$TMP/step1/nginx.hcl" || true
  sv plan -c "$TMP/step1"
  sv apply -auto-approve -c "$TMP/step1"
  plan_exitcode -c "$TMP/step1"
  note "from the client (outside cluster_cidrs, so masqueraded to the node):"
  requests "$CLIENT" 6 get http://10.32.0.61/
  expect_sources_not 192.0.2.2
  note "from the node itself (OUTPUT chain):"
  requests "$NODE" 2 get http://10.32.0.61/

  # ---------------------------------------------------------------------------
  step "Step 2: NodePort, external policy Cluster (and a UDP service with ClientIP affinity)"
  note "now the real examples/: nginx becomes NodePort 30080, dns (UDP) is added"
  sv plan -c examples
  sv apply -auto-approve -c examples
  note "node port from the client: any of the three backends, source masqueraded:"
  requests "$CLIENT" 6 get http://192.0.2.1:30080/
  expect_sources_not 192.0.2.2
  note "what trace predicts for that packet, from the rules now in the node: three paths of 33.3 %, masqueraded:"
  sv trace --live -c examples --src 192.0.2.2 --dst 192.0.2.1 --dport 30080
  note "UDP to the dns cluster IP: ClientIP affinity keeps every query on one backend:"
  requests "$CLIENT" 3 udp 10.32.0.10:53
  expect_one_name

  # ---------------------------------------------------------------------------
  step "Step 3: external policy Local"
  cp examples/*.hcl "$TMP/step3/"
  sed -i 's/^\([[:space:]]*\)type\([[:space:]]*\)=\([[:space:]]*\)"NodePort"$/&\n\1external_traffic_policy = "Local"/' "$TMP/step3/nginx.hcl"
  grep -q 'external_traffic_policy = "Local"' "$TMP/step3/nginx.hcl" ||
    die "could not set external_traffic_policy in a copy of examples/nginx.hcl"
  run diff -u --label examples/nginx.hcl --label step3/nginx.hcl examples/nginx.hcl "$TMP/step3/nginx.hcl" || true
  note "only nginx's chains change:"
  sv plan -c "$TMP/step3"
  sv apply -auto-approve -c "$TMP/step3"
  note "node port from the client: only node1's endpoints (backend-0, backend-1), and they see the client's own address:"
  requests "$CLIENT" 6 get http://192.0.2.1:30080/
  expect_names backend-0 backend-1
  expect_sources 192.0.2.2
  note "trace agrees: two paths of 50 %, through SVCNAT-SVL, not masqueraded:"
  sv trace --live -c "$TMP/step3" --src 192.0.2.2 --dst 192.0.2.1 --dport 30080

  # ---------------------------------------------------------------------------
  step "Step 4: conntrack, show, rollback, destroy"
  note "the kernel's record of the node-port connections: the reply direction names the endpoint the"
  note "DNAT chose; step 2's go back to the node (reply dst 10.64.x.1, masqueraded), step 3's straight to 192.0.2.2"
  run ip netns exec "$NODE" conntrack -L -p tcp --dport 30080
  sv show -c "$TMP/step3"
  note "back to the previous generation (step 2, policy Cluster):"
  # rollback and destroy read -c only for settings (the chain prefix).
  sv rollback -auto-approve -c examples
  plan_exitcode -c examples
  requests "$CLIENT" 3 get http://192.0.2.1:30080/
  expect_sources_not 192.0.2.2
  sv destroy -auto-approve -c examples
  note "no SVCNAT chain or rule left in the node namespace:"
  no_owned_chains

  # ---------------------------------------------------------------------------
  step "Step 5: endpoint health checks (svcnat reconcile)"
  mkdir -p "$TMP/step5"
  cp examples/*.hcl "$TMP/step5/"
  [[ $(tail -n 1 examples/nginx.hcl) == "}" ]] || die "examples/nginx.hcl does not end with its service's closing brace"
  {
    head -n -1 examples/nginx.hcl
    printf '\n  health_check {\n    protocol = "http"\n    path     = "/"\n    interval = "1s"\n    timeout  = "500ms"\n    rise     = 2\n    fall     = 2\n  }\n}\n'
  } >"$TMP/step5/nginx.hcl"
  run diff -u --label examples/nginx.hcl --label step5/nginx.hcl examples/nginx.hcl "$TMP/step5/nginx.hcl" || true
  note "reconcile applies it and checks each endpoint every second, from the node namespace:"
  printf '%s$ %s reconcile --netns %s --state-dir %s -c %s --interval 1m 2>%s &%s\n' "$B" "$SVCNAT" "$NODE" "$TMP/state" "$TMP/step5" "$TMP/reconcile.log" "$R"
  "$SVCNAT" reconcile --netns "$NODE" --state-dir "$TMP/state" -c "$TMP/step5" --interval 1m 2>"$TMP/reconcile.log" &
  PIDS+=($!)
  local reconcile=$!
  await_log 'msg=applied event=start' 60
  requests "$CLIENT" 6 get http://10.32.0.61/
  note "backend-1's server stops:"
  kill_server 1
  await_log 'msg="endpoint down' 10
  await_log 'msg=applied event=health' 10
  run grep -E 'endpoint (down|up)|msg=applied' "$TMP/reconcile.log"
  note "every new connection goes to the two endpoints left:"
  requests "$CLIENT" 6 get http://10.32.0.61/
  expect_names backend-0 backend-2
  note "show and plan beside reconcile say why backend-1 is out; it is no drift:"
  sv show -c "$TMP/step5"
  plan_exitcode -c "$TMP/step5"
  note "backend-1's server starts again; two passing checks bring it back:"
  start_server 1
  await_log 'msg="endpoint up' 10
  await_log 'msg=applied event=health' 10
  run grep -E 'endpoint up' "$TMP/reconcile.log"
  requests "$CLIENT" 6 get http://10.32.0.61/
  kill -TERM "$reconcile"
  wait "$reconcile" 2>/dev/null || true
  sv destroy -auto-approve -c "$TMP/step5"
  no_owned_chains

  trap - INT TERM
  cleanup
  printf '\ndemo finished in %ds; removed %d namespaces\n' "$SECONDS" "$REMOVED"
}

# Sourcing the script (for testing its parts) defines the functions only.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
