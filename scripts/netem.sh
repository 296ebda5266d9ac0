#!/usr/bin/env bash
# Emulates datacenters for a fleet on one Linux machine: each member runs in its own network
# namespace, joined to a bridge by a veth pair, and `tc netem` adds delay, jitter and loss on each
# member's link according to its site. Needs root (ip netns, tc). Not run by `npm test`.
#
#   sudo scripts/netem.sh up   D [--delay 20ms] [--jitter 5ms] [--loss 0.5%]   create namespaces, start members
#   sudo scripts/netem.sh down D                                             stop members, remove everything
#   sudo scripts/netem.sh run  D [options] -- CMD...                         up, run CMD, then down (always)
# --no-netem keeps the namespaces but adds no delay or loss (kernels without sch_netem).
#
# D is a fleet directory (bkv up --dir D, or created here with 5 members if empty). Member i gets
# namespace bkv-m<i> with address 10.77.0.<10+i>; the host side of the bridge is 10.77.0.1. The
# script rewrites the member hosts in a copy of fleet.json (D/fleet-netem.json) so the members and
# the gateway use those addresses; start the gateway on the host with that file:
#   node bin/bkv.js fleet ... --fleet D/fleet-netem.json  (status), or startFleetGateway() in code.
# netem sits on both ends of each member's link, so a member-to-member round trip takes about
# 4 × delay (plus jitter), and each packet crosses two lossy hops.
set -euo pipefail

ACTION=${1:-}; DIR=${2:-}
[[ -n "$ACTION" && -n "$DIR" ]] || { sed -n '2,20p' "$0"; exit 2; }
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
PIDS="$DIR/netem.pids"

members() { node -e 'const c=require(process.argv[1]);for(const m of c.members)console.log(m.id+" "+m.site)' "$(realpath "$DIR/fleet.json")"; }

down() {
  if [[ -f "$PIDS" ]]; then
    while read -r pid; do kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done < "$PIDS"
    sleep 2
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$PIDS"
    rm -f "$PIDS"
  fi
  for ns in $(ip netns list | awk '/^bkv-m[0-9]/{print $1}'); do ip netns del "$ns" 2>/dev/null || true; done
  ip link del "$BR" 2>/dev/null || true
  for l in $(ip -o link show | awk -F': ' '/bkvh[0-9]/{print $2}' | cut -d@ -f1); do ip link del "$l" 2>/dev/null || true; done
}

up() {
  if [[ ! -f "$DIR/fleet.json" ]]; then
    node --input-type=module -e 'const { createFleet } = await import(process.argv[1]); await createFleet(process.argv[2], { members: 5 });' \
      "$ROOT/dist/host/fleet/provision.js" "$DIR"
  fi
  ip link add "$BR" type bridge
  ip addr add 10.77.0.1/24 dev "$BR"
  ip link set "$BR" up
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
    # Cross-site latency on the member's egress and on the bridge port towards it.
    if [[ $NETEM == 1 ]]; then
      ip netns exec "$ns" tc qdisc add dev eth0 root netem delay "$DELAY" "$JITTER" loss "$LOSS"
      tc qdisc add dev "bkvh$id" root netem delay "$DELAY" "$JITTER" loss "$LOSS"
    fi
    mkdir -p "$DIR/logs"
    ip netns exec "$ns" node "$ROOT/bin/bkv.js" member start --dir "$DIR/member-$id" --fleet "$DIR/fleet-netem.json" \
      >> "$DIR/logs/member-$id.log" 2>&1 &
    echo $! >> "$PIDS"
    echo "member $id ($site) in $ns at 10.77.0.$((10 + id))$([[ $NETEM == 1 ]] && echo ": netem delay $DELAY ± $JITTER, loss $LOSS")"
  done < <(members)
}

case "$ACTION" in
  up) down; up;;
  down) down; echo "removed namespaces, bridge and member processes";;
  run)
    trap down EXIT INT TERM
    down; up
    "${CMD[@]}"
    ;;
  *) echo "unknown action $ACTION" >&2; exit 2;;
esac
