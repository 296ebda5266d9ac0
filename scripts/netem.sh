#!/usr/bin/env bash
# Emulates datacenters for a fleet on one Linux machine: each member runs in its own network
# namespace, joined to a bridge by a veth pair, and `tc netem` adds delay, jitter and loss on each
# member's link according to its site. Needs root (ip netns, tc). Not run by `npm test`.
#
#   sudo scripts/netem.sh up   D [--delay 20ms] [--jitter 5ms] [--loss 0.5%]   create namespaces, start members
#   sudo scripts/netem.sh down D                                             stop members, remove everything
#   sudo scripts/netem.sh run  D [options] -- CMD...                         up, run CMD, then down (always)
# --no-netem keeps the namespaces but adds no delay or loss.
#
# Kernels without sch_netem: the script tries netem once on the bridge before starting anything. If
# the kernel refuses it, delay and jitter are skipped (said so on stderr) and the loss is applied
# with iptables inside each member namespace instead (`-m statistic --mode random` DROP on eth0,
# OUTPUT and INPUT), which needs iptables (iptables-nft or iptables-legacy, whichever works first;
# BKV_NETEM_IPTABLES=iptables-legacy picks one).
#
# D is a fleet directory (bkv up --dir D, or created here with 5 members if empty). Member i gets
# namespace bkv-m<i> with address 10.77.0.<10+i>; the host side of the bridge is 10.77.0.1. The
# script rewrites the member hosts in a copy of fleet.json (D/fleet-netem.json) so the members and
# the gateway use those addresses; start the gateway on the host with that file:
#   node bin/bkv.js fleet ... --fleet D/fleet-netem.json  (status), or startFleetGateway() in code,
#   or scripts/netem-check.ts (load and checks). CMD gets BKV_NETEM_DIR=D in its environment.
# netem sits on both ends of each member's link, so a member-to-member round trip takes about
# 4 × delay (plus jitter), and each packet crosses two lossy hops (the iptables fallback drops on
# the sender's egress and the receiver's ingress: also two lossy hops, no delay).
set -euo pipefail

USAGE_LINES=2,25
ACTION=${1:-}; DIR=${2:-}
[[ -n "$ACTION" && -n "$DIR" ]] || { sed -n "${USAGE_LINES}p" "$0"; exit 2; }
shift 2
DELAY=20ms; JITTER=5ms; LOSS=0.5%; NETEM=1; CMD=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --delay) DELAY=$2; shift 2;;
    --jitter) JITTER=$2; shift 2;;
    --loss) LOSS=$2; shift 2;;
    --no-netem) NETEM=0; shift;;
    --) shift; CMD=("$@"); break;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BR=bkvbr0
PROBE_NS=bkv-probe
PIDS="$DIR/netem.pids"
# The iptables command used for the loss fallback, for `down` to flush the same tables.
IPT_FILE="$DIR/netem.iptables"
MODE=none   # netem | iptables | none
IPT=

members() { node -e 'const c=require(process.argv[1]);for(const m of c.members)console.log(m.id+" "+m.site)' "$(realpath "$DIR/fleet.json")"; }

# "1%", "0.5%" or "0.5" (percent, as netem reads it) -> probability for the statistic match.
loss_probability() { awk -v l="${LOSS%\%}" 'BEGIN { if (l !~ /^[0-9]*\.?[0-9]+$/ || l > 100) exit 1; printf "%.6f", l / 100 }'; }

# Does the kernel take a netem qdisc? Tried on the (still idle) bridge and removed again.
netem_works() {
  if tc qdisc add dev "$BR" root netem delay 1ms 2>/dev/null; then
    tc qdisc del dev "$BR" root 2>/dev/null || true
    return 0
  fi
  return 1
}

# The first iptables that accepts a statistic DROP rule in a scratch namespace.
pick_iptables() {
  local t found=
  ip netns add "$PROBE_NS"
  for t in ${BKV_NETEM_IPTABLES:-iptables-nft iptables-legacy iptables}; do
    command -v "$t" >/dev/null 2>&1 || continue
    if ip netns exec "$PROBE_NS" "$t" -w -A INPUT -i lo -m statistic --mode random --probability 0.5 -j DROP 2>/dev/null; then
      found=$t
      break
    fi
  done
  ip netns del "$PROBE_NS" 2>/dev/null || true
  [[ -n "$found" ]] && echo "$found"
}

down() {
  if [[ -f "$PIDS" ]]; then
    while read -r pid; do kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done < "$PIDS"
    sleep 2
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$PIDS"
    rm -f "$PIDS"
  fi
  local ipt=
  [[ -f "$IPT_FILE" ]] && ipt=$(cat "$IPT_FILE")
  for ns in $(ip netns list | awk '/^bkv-m[0-9]|^bkv-probe/{print $1}'); do
    # Anything still running in the namespace (a member restarted by CMD, say) goes with it.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    [[ -n "$ipt" ]] && ip netns exec "$ns" "$ipt" -w -F 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "$IPT_FILE"
  ip link del "$BR" 2>/dev/null || true
  for l in $(ip -o link show | awk -F': ' '/bkvh[0-9]/{print $2}' | cut -d@ -f1); do ip link del "$l" 2>/dev/null || true; done
}

up() {
  if [[ ! -f "$DIR/fleet.json" ]]; then
    node --input-type=module -e 'const { createFleet } = await import(process.argv[1]); await createFleet(process.argv[2], { members: 5 });' \
      "$ROOT/dist/host/fleet/provision.js" "$DIR"
  fi
  local prob
  prob=$(loss_probability) || { echo "--loss $LOSS: expected a percentage such as 1% or 0.5%" >&2; exit 2; }
  ip link add "$BR" type bridge
  ip addr add 10.77.0.1/24 dev "$BR"
  ip link set "$BR" up
  if [[ $NETEM == 1 ]]; then
    if netem_works; then
      MODE=netem
    else
      echo "netem.sh: this kernel has no sch_netem: delay ($DELAY) and jitter ($JITTER) cannot be emulated here and are skipped" >&2
      if [[ $prob == 0.000000 ]]; then
        echo "netem.sh: loss 0: no loss rules either" >&2
      elif IPT=$(pick_iptables); then
        MODE=iptables
        echo "$IPT" > "$IPT_FILE"
        echo "netem.sh: loss $LOSS on each direction of every member link with $IPT (statistic match, probability $prob)" >&2
      else
        echo "netem.sh: no working iptables with the statistic match either (apt-get install iptables); use --no-netem to run without loss" >&2
        exit 1
      fi
    fi
  fi
  : > "$PIDS"
  node -e '
    const fs=require("fs");const c=JSON.parse(fs.readFileSync(process.argv[1],"utf8"));
    for(const m of c.members){m.host="10.77.0."+(10+m.id);}
    c.gateway.host="127.0.0.1";
    fs.writeFileSync(process.argv[2],JSON.stringify(c,null,2)+"\n");' "$DIR/fleet.json" "$DIR/fleet-netem.json"
  while read -r id site; do
    ns=bkv-m$id
    ip netns add "$ns"
    ip link add "bkvh$id" type veth peer name eth0 netns "$ns"
    ip link set "bkvh$id" master "$BR" up
    ip -n "$ns" addr add "10.77.0.$((10 + id))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    local what=""
    case "$MODE" in
      netem)
        # Cross-site latency on the member's egress and on the bridge port towards it.
        ip netns exec "$ns" tc qdisc add dev eth0 root netem delay "$DELAY" "$JITTER" loss "$LOSS"
        tc qdisc add dev "bkvh$id" root netem delay "$DELAY" "$JITTER" loss "$LOSS"
        what=": netem delay $DELAY ± $JITTER, loss $LOSS"
        ;;
      iptables)
        # The same two lossy hops as netem: what leaves the member, and what reaches it.
        ip netns exec "$ns" "$IPT" -w -A OUTPUT -o eth0 -m statistic --mode random --probability "$prob" -j DROP
        ip netns exec "$ns" "$IPT" -w -A INPUT -i eth0 -m statistic --mode random --probability "$prob" -j DROP
        what=": loss $LOSS each way ($IPT), no delay"
        ;;
    esac
    mkdir -p "$DIR/logs"
    ip netns exec "$ns" node "$ROOT/bin/bkv.js" member start --dir "$DIR/member-$id" --fleet "$DIR/fleet-netem.json" \
      >> "$DIR/logs/member-$id.log" 2>&1 &
    echo $! >> "$PIDS"
    disown  # no job notice from this shell when `down` or CMD kills the member
    echo "member $id ($site) in $ns at 10.77.0.$((10 + id))$what"
  done < <(members)
}

case "$ACTION" in
  up)
    trap down EXIT
    down; up
    trap - EXIT
    ;;
  down) down; echo "removed namespaces, bridge and member processes";;
  run)
    trap down EXIT INT TERM
    down; up
    BKV_NETEM_DIR="$DIR" "${CMD[@]}"
    ;;
  *) echo "unknown action $ACTION" >&2; exit 2;;
esac
