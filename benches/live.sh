#!/usr/bin/env bash
# Live capture benchmark (not a test): the agent on one end of a veth pair between two
# network namespaces, the bench capture replayed at full speed into the other end.
#
# Reports, per capture backend (libpcap; pnet too when BACKENDS includes it):
#   - offered packets per second (tcpreplay's own summary),
#   - frames the agent read and lost (kernel ring, interface, worker queues: its health
#     record),
#   - agent CPU while the replay ran (utime + stime from /proc/PID/stat),
#   - resident memory at steady state with the default configuration, and with 100,000
#     live flows (a capture of 100,000 distinct TCP SYNs, written by this script).
#
# Usage: sudo benches/live.sh            (from the repository root)
#   BENCH_PCAP=/tmp/bench.pcap  LOOPS=3  SENDERS=2  BACKENDS="pcap pnet"  CARGO_TARGET_DIR=…
#   AGENT_EXE_pcap=… AGENT_EXE_pnet=…   (prebuilt release binaries, default and `pnet`)
#   SENDER=fast|tcpreplay  FAST_REPLAY=…   (the sender, and a prebuilt fast_replay)
# SENDERS sender processes send at once (one tcpreplay saturates one core well
# below what the agent takes; on a veth the kernel's receive work, the copy into the
# agent's ring included, runs on the sender's core).
# Needs: root (namespaces), ip, tcpreplay, python3; capinfos and mergecap to make the
# bench capture the first time (../shared/bench/make_bench_pcap.sh).
# Nothing leaves the veth pair: both namespaces have no addresses and no routes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
BENCH_PCAP=${BENCH_PCAP:-/tmp/bench.pcap}
LOOPS=${LOOPS:-3}
SENDERS=${SENDERS:-2}
BACKENDS=${BACKENDS:-pcap pnet}
FLOWS=${FLOWS:-100000}
# fast: agent/examples/fast_replay.rs (sendmmsg on AF_PACKET); tcpreplay: one frame per
# system call, about 300,000 frames a second per sender here.
SENDER=${SENDER:-fast}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

[ "$(id -u)" = 0 ] || { echo "live.sh: needs root (network namespaces)" >&2; exit 1; }
for t in ip tcpreplay python3; do
  command -v "$t" >/dev/null || { echo "live.sh: needs $t" >&2; exit 1; }
done
if [ ! -f "$BENCH_PCAP" ]; then
  ../shared/bench/make_bench_pcap.sh "$BENCH_PCAP" 30
fi

work=$(mktemp -d /tmp/setten-live-bench.XXXXXX)
ns_a=setten-bench-a-$$
ns_r=setten-bench-r-$$
if_a=sb$$a
if_r=sb$$r
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null || true
  ip netns del "$ns_a" 2>/dev/null || true
  ip netns del "$ns_r" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- the agent binary ------------------------------------------------------------------
build_agent() { # BACKEND FEATURES → sets agent_exe (AGENT_EXE_<backend>: a prebuilt one)
  local backend=$1 features=$2 var=AGENT_EXE_$1
  if [ -n "${!var:-}" ]; then
    agent_exe=${!var}
    return
  fi
  cargo build --release --locked -p setten-agent $features >&2
  agent_exe=$CARGO_TARGET_DIR/release/setten-agent
}

start_agent() { # CONFIG LOG
  local cfg=$1 log=$2
  ip netns exec "$ns_a" env SETTEN_LOG=info "$agent_exe" run --config "$cfg" \
    >/dev/null 2>"$log" &
  agent_pid=$!
  for _ in $(seq 600); do
    grep -q "capturing on" "$log" && return 0
    kill -0 "$agent_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "live.sh: the agent did not start" >&2
  cat "$log" >&2
  exit 1
}

stop_agent() {
  kill -TERM "$agent_pid"
  wait "$agent_pid" || { echo "live.sh: the agent failed" >&2; exit 1; }
  agent_pid=
}

cpu_ticks() { # utime + stime of the agent, clock ticks (USER_HZ = 100)
  awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$agent_pid/stat"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$agent_pid/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$agent_pid/status"; }
last_health() { grep -E "health: |drop alarm: " "$1" | tail -1 | sed 's/.*\(health\|drop alarm\): //'; }
frames_read() { last_health "$1" | sed -n 's/^.*[: ]\([0-9][0-9]*\) frames, .*/\1/p'; }
wait_settled() { # LOG: until the frame count stops changing for 3 s
  local log=$1 prev=-1 same=0 now
  while [ $same -lt 3 ]; do
    sleep 1
    now=$(frames_read "$log"); now=${now:-0}
    if [ "$now" = "$prev" ]; then same=$((same + 1)); else same=0; prev=$now; fi
  done
}

if [ "$SENDER" = fast ]; then
  fast_exe=${FAST_REPLAY:-}
  if [ -z "$fast_exe" ]; then
    cargo build --release --locked -p setten-agent --example fast_replay >&2
    fast_exe=$CARGO_TARGET_DIR/release/examples/fast_replay
  fi
fi

# --- the namespaces ----------------------------------------------------------------------
ip netns add "$ns_a"
ip netns add "$ns_r"
ip link add "$if_a" netns "$ns_a" type veth peer name "$if_r" netns "$ns_r"
for pair in "$ns_a:$if_a" "$ns_r:$if_r"; do
  n=${pair%%:*}; i=${pair##*:}
  ip netns exec "$n" sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1" || true
  ip -n "$n" link set "$i" mtu 65535
  ip netns exec "$n" ethtool -K "$i" gro off tso off gso off >/dev/null 2>&1 || true
  ip -n "$n" link set lo up
  ip -n "$n" link set "$i" up
done

# --- 100,000 distinct SYNs ---------------------------------------------------------------
syn_pcap=$work/syn-$FLOWS.pcap
python3 - "$syn_pcap" "$FLOWS" <<'EOF'
import struct, sys
path, n = sys.argv[1], int(sys.argv[2])
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
with open(path, 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        src = bytes([10, 20, (i >> 8) & 0xff, i & 0xff])
        dst = bytes([198, 51, 100, (i >> 16) & 0xff])
        sport = 1024 + (i % 60000)
        tcp = struct.pack('!HHIIBBHHH', sport, 443, i, 0, 5 << 4, 0x02, 64240, 0, 0)
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, i & 0xffff, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        frame = b'\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00' + ip + tcp
        t = 1_700_000_000_000_000 + i * 10
        f.write(struct.pack('<IIII', t // 1_000_000, t % 1_000_000, len(frame), len(frame)) + frame)
EOF

write_config() { # BACKEND → path
  local backend=$1 cfg=$work/agent-$1.toml
  rm -rf "$work/state-$backend"
  mkdir -p "$work/state-$backend"
  # The default configuration but for where to capture and write; health every second
  # so the figures can be read while it runs.
  cat >"$cfg" <<EOF
[capture]
interfaces = ["$if_a"]
backend = "$backend"

[inventory]
state_dir = "$work/state-$backend"

[health]
interval = "1s"

[spool]
path = "$work/state-$backend/spool.db"
EOF
  echo "$cfg"
}

heap_kib() { awk '/^RssAnon:/ { print $2 }' "/proc/$agent_pid/status"; }

run_backend() { # BACKEND
  local backend=$1 cfg log
  cfg=$(write_config "$backend")
  log=$work/agent-$backend.log
  start_agent "$cfg" "$log"
  sleep 2
  local rss_idle heap_idle cpu0 cpu1 t0 t1 k senders=()
  rss_idle=$(rss_kib)
  heap_idle=$(heap_kib)
  cpu0=$(cpu_ticks)
  t0=$(date +%s.%N)
  for k in $(seq "$SENDERS"); do
    if [ "$SENDER" = fast ]; then
      ip netns exec "$ns_r" "$fast_exe" "$if_r" "$BENCH_PCAP" "$LOOPS" \
        >"$work/replay-$backend-$k.txt" 2>&1 &
    else
      ip netns exec "$ns_r" tcpreplay -i "$if_r" --topspeed --preload-pcap \
        --loop="$LOOPS" "$BENCH_PCAP" >"$work/replay-$backend-$k.txt" 2>&1 &
    fi
    senders+=($!)
  done
  wait "${senders[@]}"
  t1=$(date +%s.%N)
  wait_settled "$log"
  cpu1=$(cpu_ticks)
  local rss_bench heap_bench health_bench
  rss_bench=$(rss_kib)
  heap_bench=$(heap_kib)
  health_bench=$(last_health "$log")
  stop_agent

  # 100,000 live flows on a fresh agent (TCP, unanswered: they stay for the 600 s idle
  # timeout).
  cfg=$(write_config "$backend")
  start_agent "$cfg" "$log.flows"
  ip netns exec "$ns_r" tcpreplay -i "$if_r" --pps=100000 "$syn_pcap" >/dev/null 2>&1
  wait_settled "$log.flows"
  sleep 2
  local rss_flows heap_flows health_flows hwm
  rss_flows=$(rss_kib)
  heap_flows=$(heap_kib)
  hwm=$(hwm_kib)
  health_flows=$(last_health "$log.flows")
  stop_agent

  echo "== backend $backend"
  if [ "$SENDER" = fast ]; then
    cat "$work"/replay-"$backend"-*.txt | awk -v senders="$SENDERS" '
      /^sent / { ok += $2; if ($5 > t) t = $5; failed += $10; print "  sender: " $0 }
      END { printf "offered: %d frames from %d fast_replay senders in %.2f s = %.0f pps (%d frames too large for the veth)\n",
        ok, senders, t, ok / t, failed }'
  else
    cat "$work"/replay-"$backend"-*.txt | awk -v senders="$SENDERS" '
      /Actual:/ { if ($(NF-1) > t) t = $(NF-1) }
      /Successful packets:/ { ok += $3 }
      /Failed packets:/ { failed += $3 }
      END { printf "offered: %d frames from %d tcpreplay senders in %.2f s = %.0f pps (%d frames too large for the veth)\n",
        ok, senders, t, ok / t, failed }'
    grep -h "Rated:" "$work"/replay-"$backend"-*.txt | sed 's/^ */  tcpreplay: /'
  fi
  echo "agent after the bench: $health_bench"
  local sent read
  sent=$(cat "$work"/replay-"$backend"-*.txt | awk '/Successful packets:/ { ok += $3 } /^sent / { ok += $2 } END { print ok }')
  read=$(echo "$health_bench" | sed -n 's/^\([0-9]*\) frames.*/\1/p')
  awk -v s="$sent" -v r="$read" 'BEGIN {
    printf "frames sent but never read by the agent: %d (%.2f%%)\n", s - r, 100 * (s - r) / s }'
  # All the agent's CPU until it had processed every frame, over the replay's duration.
  awk -v c0="$cpu0" -v c1="$cpu1" -v t0="$t0" -v t1="$t1" 'BEGIN {
    printf "agent CPU: %.2f s for the whole bench, %.1f s of replay (%.0f%% of one core)\n",
      (c1 - c0) / 100, t1 - t0, 100 * (c1 - c0) / 100 / (t1 - t0) }'
  echo "RSS, default config: $((rss_idle / 1024)) MiB idle ($((heap_idle / 1024)) MiB heap), $((rss_bench / 1024)) MiB after the bench ($((heap_bench / 1024)) MiB heap)"
  echo "agent with $FLOWS SYN flows: $health_flows"
  echo "RSS with $FLOWS live flows: $((rss_flows / 1024)) MiB ($((heap_flows / 1024)) MiB heap; peak $((hwm / 1024)) MiB)"
}

for backend in $BACKENDS; do
  case $backend in
    pcap) build_agent pcap "" ;;
    pnet) build_agent pnet "--features pnet" ;;
    *) echo "live.sh: unknown backend $backend" >&2; exit 1 ;;
  esac
  run_backend "$backend"
done
