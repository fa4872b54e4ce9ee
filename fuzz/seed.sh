#!/bin/sh
# Regenerates the seed corpora fuzz/corpus/<target>/ from the real captures: the shared
# corpus and the project's fixtures.
#
#   fuzz/seed.sh [captures dir]     (default: ../shared/corpus/pcap beside the repository,
#                                    or $SETTEN_CORPUS)
#
# The seeds are cut from the captures by the agent's own reader, decoder and flow table
# (fuzz/examples/seed.rs), so each target starts from bytes its parser meets in a real
# run. fuzz/corpus is git-ignored; re-run this after the captures change. Existing files
# are kept (libFuzzer adds its own finds next to them); remove fuzz/corpus for a clean set.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
captures=${1:-${SETTEN_CORPUS:-$repo/../shared/corpus/pcap}}
if [ ! -d "$captures" ]; then
    echo "seed.sh: no capture directory at $captures (pass one, or set SETTEN_CORPUS)" >&2
    exit 2
fi
cd "$here"
cargo run --quiet --release --example seed -- "$captures" "$repo/rules" "$here/corpus"
# The project's own captures of real programs (X11, XDMCP, rsh and rlogin, OpenVPN in
# every wrapping, AnyConnect over TLS and DTLS, RDP, tinc, WireGuard, L2TP, PPTP, a
# netfilter log, the bundled sample) add what the corpus lacks.
for dir in "$repo/tests/fixtures" "$repo/tests/fixtures/openvpn" "$repo/tests/fixtures/rdp" \
    "$repo/tests/fixtures/anyconnect"; do
    cargo run --quiet --release --example seed -- "$dir" "$repo/rules" "$here/corpus"
done
# The ledger target starts from the sample ledgers (UTF-8 and Shift_JIS).
mkdir -p "$here/corpus/ledger"
cp "$repo"/samples/*.csv "$here/corpus/ledger/"
# The findings target starts from what the agent really sends: the sample's findings as
# a batch body and as a signed export file.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'fuzz.%s' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$tmp/token"
chmod 600 "$tmp/token"
(cd "$repo" && cargo build --quiet --release -p setten-agent)
agent="${CARGO_TARGET_DIR:-$repo/target}/release/setten-agent"
"$agent" analyze --inventory --ship http://127.0.0.1:9 --ship-timeout 1s --token-file "$tmp/token" \
    --spool "$tmp/spool.db" "$repo/samples/hospital-demo.pcap" >/dev/null 2>&1 || true
mkdir -p "$here/corpus/findings"
"$agent" export "$tmp/sample.export" --token-file "$tmp/token" --spool "$tmp/spool.db" >/dev/null 2>&1
cp "$tmp/sample.export" "$here/corpus/findings/sample.export"
sed -n 2p "$tmp/sample.export" > "$here/corpus/findings/sample.batch.json"
