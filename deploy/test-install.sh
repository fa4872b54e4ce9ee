#!/usr/bin/env bash
# Builds the setten-agent and setten-collector Debian packages, installs them into a
# clean Debian root (debootstrap --variant=minbase, entered with chroot: no container
# runtime needed) and checks what the packages promise:
#   - both install with apt from an empty minbase root (their dependencies resolve);
#   - the binaries run; unit files, users, directories (owner and mode) and conffiles
#     are in place; nothing is enabled or started on first install;
#   - the installed rules load, and the installed collector configuration serves: the
#     agent, enrolled as the guide says, ships its findings to the collector, each
#     running as its own system user;
#   - `systemd-analyze verify` (the root's own systemd) passes on the installed units;
#   - a reinstall keeps a changed conffile and the spool; remove keeps users, data and
#     configuration; purge takes them away.
#
# Needs root for debootstrap, chroot and mount (run by another user, it builds the
# packages as that user, then runs the rest through sudo) and the Debian (or Ubuntu)
# mirror over the network. The pristine root is kept under $SETTEN_TEST_CACHE and
# copied for each run.
#
# Environment:
#   SETTEN_TEST_SUITE   release of the clean root (default: this machine's own, so the
#                       binaries built here find the C library they were linked with)
#   SETTEN_TEST_MIRROR  archive mirror (default: deb.debian.org, or archive.ubuntu.com)
#   SETTEN_TEST_CACHE   where the roots live (default: /tmp/setten-debroot)
#   SETTEN_TEST_DEBS    a directory holding setten-agent_*.deb and setten-collector_*.deb
#                       to test instead of building them
#   SETTEN_TEST_KEEP=1  leave the work root in place afterwards, for inspection
#   CARGO_TARGET_DIR    as for cargo
#
# Exit status: 0 when every check passed, 1 when one failed, 2 when the test could
# not run (not root, mirror unreachable, build failed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

say() { printf 'test-install: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 2
}

if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi

. /etc/os-release
case "${ID:-}" in
ubuntu) default_mirror=http://archive.ubuntu.com/ubuntu ;;
*) default_mirror=http://deb.debian.org/debian ;;
esac
suite=${SETTEN_TEST_SUITE:-${VERSION_CODENAME:-bookworm}}
mirror=${SETTEN_TEST_MIRROR:-$default_mirror}
cache=${SETTEN_TEST_CACHE:-/tmp/setten-debroot}
base=$cache/$suite-base
work=$cache/$suite-work

# ---------------------------------------------------------------------------------
# Packages

if [ -n "${SETTEN_TEST_DEBS:-}" ]; then
    debs=$SETTEN_TEST_DEBS
else
    if ! cargo deb --version >/dev/null 2>&1; then
        say "installing cargo-deb"
        cargo install cargo-deb --locked
    fi
    say "building the release binaries"
    cargo build --release --locked -p setten-agent -p setten-collector --bins
    debs=${CARGO_TARGET_DIR:-$repo/target}/setten-debs
    rm -rf "$debs"
    for p in setten-agent setten-collector; do
        cargo deb --no-build -p "$p" -o "$debs" >&2
    done
fi
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "run as root: debootstrap, chroot and mount need it"
    exec sudo SETTEN_TEST_DEBS="$debs" SETTEN_TEST_SUITE="$suite" SETTEN_TEST_MIRROR="$mirror" \
        SETTEN_TEST_CACHE="$cache" SETTEN_TEST_KEEP="${SETTEN_TEST_KEEP:-0}" "$repo/deploy/test-install.sh"
fi

agent_deb=$(find "$debs" -maxdepth 1 -name 'setten-agent_*.deb' | sort | tail -n 1)
collector_deb=$(find "$debs" -maxdepth 1 -name 'setten-collector_*.deb' | sort | tail -n 1)
if [ -z "$agent_deb" ] || [ -z "$collector_deb" ]; then
    die "no setten-agent/setten-collector .deb in $debs"
fi
say "packages: $agent_deb $collector_deb"

# ---------------------------------------------------------------------------------
# The clean root

mkdir -p "$cache"

# Mount points under a directory, deepest first.
mounts_under() { findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d "/") == 1 || $0 == d' | sort -r; }

# Removes a root only when nothing is mounted in it any more: rm -rf through a bind
# mount of /dev or /proc would reach the host.
remove_root() {
    local m
    for m in $(mounts_under "$1"); do umount "$m" || umount -l "$m" || true; done
    [ -z "$(mounts_under "$1")" ] || die "still mounted under $1; not removing it"
    rm -rf "$1"
}

if [ ! -e "$base/.setten-base-complete" ]; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    if command -v curl >/dev/null 2>&1 &&
        ! curl -fsS --max-time 30 -o /dev/null "$mirror/dists/$suite/Release"; then
        die "the mirror $mirror cannot be reached (or has no $suite); set SETTEN_TEST_MIRROR to one that can"
    fi
    say "making a clean $suite root (debootstrap --variant=minbase) in $base"
    remove_root "$base.partial"
    if ! debootstrap --variant=minbase "$suite" "$base.partial" "$mirror" >"$cache/debootstrap.log" 2>&1; then
        tail -n 20 "$cache/debootstrap.log" >&2
        die "debootstrap $suite from $mirror failed (log: $cache/debootstrap.log); is the mirror reachable?"
    fi
    remove_root "$base"
    mv "$base.partial" "$base"
    touch "$base/.setten-base-complete"
fi

collector_pid=
cleanup() {
    if [ -n "$collector_pid" ]; then kill "$collector_pid" 2>/dev/null || true; fi
    if [ "${SETTEN_TEST_KEEP:-0}" = 1 ]; then
        for m in $(mounts_under "$work"); do umount "$m" || true; done
        say "kept $work"
    else
        remove_root "$work"
    fi
}
remove_root "$work"
trap cleanup EXIT
say "copying the clean root to $work"
cp -a "$base" "$work"
mount -t proc proc "$work/proc"
# A /dev of its own (not the host's): device nodes the package tools use.
mount -t tmpfs -o mode=0755,nosuid dev "$work/dev"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r name major minor <<<"$d"
    mknod -m 666 "$work/dev/$name" c "$major" "$minor"
done
ln -s /proc/self/fd "$work/dev/fd"
cp /etc/resolv.conf "$work/etc/resolv.conf"
# No service starts inside the root (Debian Policy: invoke-rc.d and policy-rc.d).
printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
chmod 755 "$work/usr/sbin/policy-rc.d"
mkdir -p "$work/tmp/setten"
cp "$agent_deb" "$collector_deb" "$repo/tests/fixtures/sample.pcapng" "$work/tmp/setten/"
chmod -R a+rX "$work/tmp/setten"

in_root() {
    chroot "$work" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive HOME=/root "$@"
}
# Runs a command in the root as a system user, with the units' UMask=0077.
as_user() {
    local u=$1
    shift
    (umask 077 && in_root setpriv --reuid "$u" --regid "$u" --init-groups -- "$@")
}

# ---------------------------------------------------------------------------------
# Checks

passed=0
failed=()
ok() {
    passed=$((passed + 1))
    printf '  ok    %s\n' "$1"
}
bad() {
    failed+=("$1")
    printf '  FAIL  %s\n' "$1"
}
check() { # DESCRIPTION COMMAND...
    local d=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}
# owner:group and octal mode of a path in the root, with the root's user names
stat_in() { in_root stat -c '%U:%G %a' "$1" 2>/dev/null || echo missing; }
expect_stat() { # PATH OWNER:GROUP MODE
    local got
    got=$(stat_in "$1")
    if [ "$got" = "$2 $3" ]; then ok "$1 is $2 $3"; else bad "$1 is $2 $3 (found: $got)"; fi
}
expect_user() { # NAME HOME
    local entry uid home shell
    if ! entry=$(in_root getent passwd "$1"); then
        bad "system user $1 exists"
        return
    fi
    IFS=: read -r _ _ uid _ _ home shell <<<"$entry"
    if [ "$uid" -lt 1000 ] && [ "$home" = "$2" ] && [ "$shell" = /usr/sbin/nologin ] &&
        in_root getent group "$1" >/dev/null; then
        ok "system user and group $1 (uid $uid, home $home, no login)"
    else
        bad "system user $1: uid $uid, home $home, shell $shell"
    fi
}
expect_gone() { # DESCRIPTION PATH
    if [ -e "$work$2" ] || [ -L "$work$2" ]; then bad "$1 ($2 is still there)"; else ok "$1"; fi
}

say "installing both packages with apt"
in_root apt-get update -qq || die "apt-get update in the root failed: is $mirror reachable?"
in_root apt-get install -y -q "/tmp/setten/$(basename "$agent_deb")" \
    "/tmp/setten/$(basename "$collector_deb")" >"$cache/apt-install.log" 2>&1 || {
    tail -n 30 "$cache/apt-install.log" >&2
    bad "apt-get install of both packages into a clean $suite root"
    exit 1
}
ok "apt-get install of both packages into a clean $suite root"

echo "binaries and dependencies"
version=$(dpkg-deb -f "$agent_deb" Version)
version=${version%-*}
for bin in setten-agent setten-collector; do
    out=$(in_root "$bin" --version 2>&1 || true)
    if [ "$out" = "$bin $version" ]; then ok "$bin --version: $out"; else bad "$bin --version: $out"; fi
done
for p in libpcap0.8 adduser procps; do
    status=$(in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" = "install ok installed" ]; then ok "$p installed (Depends)"; else bad "$p installed (Depends): $status"; fi
done
for deb in "$agent_deb" "$collector_deb"; do
    depends=$(dpkg-deb -f "$deb" Depends)
    if grep -qw adduser <<<"$depends"; then ok "$(basename "$deb") Depends: $depends"; else bad "$(basename "$deb") Depends: $depends"; fi
done
check "ieee-data installed (Recommends)" in_root test -d /usr/share/ieee-data

echo "unit files"
for u in setten-agent.service setten-offloads@.service setten-collector.service; do
    f=/usr/lib/systemd/system/$u
    if [ "$(stat_in "$f")" = "root:root 644" ] && cmp -s "$work$f" "$repo/deploy/systemd/$u"; then
        ok "$f (root:root 644, as in deploy/systemd)"
    else
        bad "$f (found: $(stat_in "$f"))"
    fi
done
for u in setten-agent.service setten-collector.service; do
    expect_gone "$u not enabled on first install" "/etc/systemd/system/multi-user.target.wants/$u"
done

echo "users and directories"
expect_user setten /var/lib/setten
expect_user setten-collector /var/lib/setten-collector
expect_stat /var/lib/setten setten:setten 750
expect_stat /etc/setten root:root 755
expect_stat /etc/setten/rules root:root 755
expect_stat /var/lib/setten-collector setten-collector:setten-collector 750
expect_stat /etc/setten-collector root:setten-collector 750
expect_stat /usr/bin/setten-agent root:root 755
expect_stat /usr/bin/setten-collector root:root 755

echo "conffiles"
agent_conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' setten-agent | awk '{print $1}')
collector_conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' setten-collector | awk '{print $1}')
expect_conffile() { # PACKAGE-LIST PATH
    if grep -qxF "$2" <<<"$1"; then ok "conffile $2"; else bad "conffile $2"; fi
}
expect_conffile "$agent_conffiles" /etc/setten/agent.toml.example
expect_conffile "$collector_conffiles" /etc/setten-collector/collector.toml
for r in "$repo"/rules/*.toml; do
    expect_conffile "$agent_conffiles" "/etc/setten/rules/$(basename "$r")"
    expect_conffile "$collector_conffiles" "/etc/setten-collector/rules/$(basename "$r")"
done

echo "the installed files work together, each program as its own user"
lines=$(as_user setten setten-agent analyze --rules /etc/setten/rules --format jsonl \
    --progress never /tmp/setten/sample.pcapng 2>/dev/null | grep -c '"type":"flow"' || true)
if [ "${lines:-0}" -gt 0 ]; then
    ok "setten-agent analyze with /etc/setten/rules, as setten: $lines flows"
else
    bad "setten-agent analyze with /etc/setten/rules, as setten"
fi

conf=/etc/setten-collector/collector.toml
token=$(as_user setten-collector setten-collector agent add probe --config "$conf" 2>/dev/null || true)
reader=$(as_user setten-collector setten-collector agent add probe-reader --role reader --config "$conf" 2>/dev/null || true)
# A token is NAME.<43 characters>, printed once on stdout.
if [[ $token =~ ^probe\.[^[:space:]]{43}$ ]] && [[ $reader =~ ^probe-reader\.[^[:space:]]{43}$ ]]; then
    ok "setten-collector agent add, as setten-collector with $conf"
else
    bad "setten-collector agent add, as setten-collector with $conf"
fi
# The token file as the guide has it made: owned by setten, mode 0600.
printf '%s\n' "${token:-}" >"$work/tmp/setten/token"
in_root install -o setten -g setten -m 0600 /tmp/setten/token /etc/setten/token
rm -f "$work/tmp/setten/token"

log=$cache/collector-serve.log
# Started as a simple command, not through as_user's subshell, so that $! is the
# collector's own pid (chroot, env and setpriv exec) and SIGTERM reaches it.
saved_umask=$(umask)
umask 077
chroot "$work" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    setpriv --reuid setten-collector --regid setten-collector --init-groups -- \
    setten-collector serve --config "$conf" --listen 127.0.0.1:0 >"$log" 2>&1 &
collector_pid=$!
umask "$saved_umask"
addr=
for _ in $(seq 1 60); do
    addr=$(sed -n 's/.*setten-collector ready.*addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1)
    if [ -n "$addr" ] || ! kill -0 "$collector_pid" 2>/dev/null; then break; fi
    sleep 0.5
done
if [ -n "$addr" ]; then
    ok "setten-collector serve with $conf, as setten-collector (listening on $addr)"
else
    bad "setten-collector serve with $conf, as setten-collector"
    sed 's/^/    /' "$log" >&2
fi
expect_stat /var/lib/setten-collector/setten.db setten-collector:setten-collector 600

if [ -n "$addr" ]; then
    pin=$(as_user setten-collector setten-collector fingerprint --config "$conf" 2>/dev/null || true)
    if as_user setten setten-agent analyze --rules /etc/setten/rules --progress never \
        --ship "https://$addr" --pin "$pin" --token-file /etc/setten/token \
        --spool /var/lib/setten/spool.db --ship-timeout 20s /tmp/setten/sample.pcapng \
        >/dev/null 2>"$cache/agent-ship.log"; then
        stored=$(curl -fsS --max-time 10 --insecure -H "Authorization: Bearer ${reader:-}" \
            "https://$addr/api/v1/agents" |
            python3 -c 'import json,sys; print(sum(a["findings"] for a in json.load(sys.stdin)["agents"] if a["name"] == "probe"))' ||
            echo 0)
        if [ "${stored:-0}" -gt 0 ]; then
            ok "setten-agent --ship, as setten with /etc/setten/token and --pin: the collector holds $stored findings"
        else
            bad "setten-agent --ship: the collector holds no findings from probe"
            sed 's/^/    /' "$cache/agent-ship.log" >&2
        fi
    else
        bad "setten-agent --ship, as setten"
        sed 's/^/    /' "$cache/agent-ship.log" >&2
    fi
    expect_stat /var/lib/setten/spool.db setten:setten 600
fi
if kill -TERM "$collector_pid" 2>/dev/null; then
    status=0
    wait "$collector_pid" || status=$?
    if [ -z "$addr" ]; then
        : # never came up; reported above
    elif [ "$status" -eq 0 ]; then
        ok "setten-collector stops cleanly on SIGTERM"
    else
        bad "setten-collector exit status on SIGTERM: $status"
    fi
elif [ -n "$addr" ]; then
    bad "setten-collector was no longer running when stopped"
fi
collector_pid=

echo "systemd-analyze verify (the root's own systemd)"
in_root apt-get install -y -q --no-install-recommends systemd >"$cache/apt-systemd.log" 2>&1 ||
    die "could not install systemd into the root (log: $cache/apt-systemd.log)"
units=(/usr/lib/systemd/system/setten-agent.service /usr/lib/systemd/system/setten-collector.service setten-offloads@eth0.service)
if out=$(in_root systemd-analyze verify "${units[@]}" 2>&1) && [ -z "$out" ]; then
    ok "systemd-analyze verify ${units[*]}: no findings ($(in_root systemd --version | head -n 1))"
else
    bad "systemd-analyze verify ${units[*]}"
    printf '%s\n' "$out" | sed 's/^/    /' >&2
fi
for u in setten-agent setten-collector; do
    exposure=$(in_root systemd-analyze security --offline=yes "/usr/lib/systemd/system/$u.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: //p' || true)
    printf '  info  systemd-analyze security %s: %s\n' "$u" "${exposure:-not available}"
done

# As the guide has the administrator do; purge must undo it.
wants=/etc/systemd/system/multi-user.target.wants
offload_wants=/etc/systemd/system/sys-subsystem-net-devices-eth0.device.wants/setten-offloads@eth0.service
in_root systemctl enable setten-agent.service setten-collector.service setten-offloads@eth0.service >/dev/null 2>&1 || true
if [ -L "$work$wants/setten-agent.service" ] && [ -L "$work$wants/setten-collector.service" ] && [ -L "$work$offload_wants" ]; then
    ok "systemctl enable setten-agent setten-collector setten-offloads@eth0"
else
    bad "systemctl enable setten-agent setten-collector setten-offloads@eth0"
fi

echo "upgrade: reinstalling keeps changed conffiles and the spool"
echo "# changed by the administrator" >>"$work/etc/setten/rules/site.toml"
uid_before=$(in_root id -u setten)
if in_root dpkg -i --force-confold "/tmp/setten/$(basename "$agent_deb")" \
    "/tmp/setten/$(basename "$collector_deb")" >"$cache/dpkg-reinstall.log" 2>&1; then
    ok "dpkg -i over the installed packages (upgrade path of the maintainer scripts)"
else
    bad "dpkg -i over the installed packages"
    tail -n 20 "$cache/dpkg-reinstall.log" >&2
fi
check "changed conffile /etc/setten/rules/site.toml kept" grep -q 'changed by the administrator' "$work/etc/setten/rules/site.toml"
check "spool kept" test -s "$work/var/lib/setten/spool.db"
check "collector store kept" test -s "$work/var/lib/setten-collector/setten.db"
check "user setten kept its uid" test "$(in_root id -u setten)" = "$uid_before"
expect_stat /var/lib/setten setten:setten 750

echo "remove keeps configuration, data and users"
in_root apt-get remove -y -q setten-agent setten-collector >"$cache/apt-remove.log" 2>&1 ||
    bad "apt-get remove"
expect_gone "setten-agent binary removed" /usr/bin/setten-agent
expect_gone "setten-agent unit removed" /usr/lib/systemd/system/setten-agent.service
expect_gone "setten-collector unit removed" /usr/lib/systemd/system/setten-collector.service
check "user setten kept after remove" in_root getent passwd setten
check "spool kept after remove" test -s "$work/var/lib/setten/spool.db"
check "collector store kept after remove" test -s "$work/var/lib/setten-collector/setten.db"
check "/etc/setten-collector/collector.toml kept after remove" test -f "$work/etc/setten-collector/collector.toml"

echo "purge removes them"
in_root apt-get purge -y -q setten-agent setten-collector >"$cache/apt-purge.log" 2>&1 ||
    bad "apt-get purge"
for u in setten setten-collector; do
    if in_root getent passwd "$u" >/dev/null || in_root getent group "$u" >/dev/null; then
        bad "user and group $u removed on purge"
    else
        ok "user and group $u removed on purge"
    fi
done
for d in /var/lib/setten /etc/setten /var/lib/setten-collector /etc/setten-collector \
    "$wants/setten-agent.service" "$wants/setten-collector.service" "$offload_wants" \
    /etc/systemd/system/setten-agent.service /etc/systemd/system/setten-collector.service; do
    expect_gone "$d removed on purge" "$d"
done

echo
if [ "${#failed[@]}" -eq 0 ]; then
    say "all $passed checks passed ($suite root, $(basename "$agent_deb"), $(basename "$collector_deb"))"
    exit 0
fi
say "${#failed[@]} of $((passed + ${#failed[@]})) checks failed:"
printf '  %s\n' "${failed[@]}" >&2
exit 1
