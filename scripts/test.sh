#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with the Rust toolchain: installs what the
# tests need when it is missing, then runs the format and lint checks, a short fuzz run of
# every wire parser, and every unit, integration and end-to-end test.
#
#   scripts/test.sh                 (as root on a fresh machine: it may install tools)
#   FUZZ_SECONDS=0 scripts/test.sh  (skip the fuzz run)
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
step() { printf '\n==> %s\n' "$*"; }

step "tools"
if ! have cargo-nextest; then cargo install cargo-nextest --locked; fi
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}
if ! have mkfifo; then apt_install coreutils; fi
# a real clamd for the antivirus tests; they write their own signature database
if ! have clamd && [ ! -x /usr/sbin/clamd ]; then apt_install clamav-daemon; fi
# systemd-analyze for the unit tests; kill(1) for ExecReload
if ! have systemd-analyze || [ ! -x /bin/kill ]; then apt_install systemd procps; fi
# network namespaces, veth, iptables (and tc where the kernel has netem) for the diode tests
if ! have ip || ! have tc; then apt_install iproute2; fi
if ! have iptables; then apt_install iptables; fi
if ! have curl; then apt_install curl; fi
# OpenSSL 3 checks the national suite's SM2, SM3 and HMAC-SM3 (tests/e2e/suite_gm.rs)
if ! have openssl; then apt_install openssl; fi
if ! have man; then apt_install man-db; fi
# libfaketime: a node whose wall clock is stepped back while it runs (tests/e2e/clock.rs)
if ! have faketime; then apt_install faketime; fi
# Time zone rules: the audit commands read and print times in a named zone (--tz Asia/Shanghai).
if [ ! -e /usr/share/zoneinfo/Asia/Shanghai ]; then apt_install tzdata; fi
# promtool (Debian's prometheus package): checks and unit-tests monitoring/alerts.yml
if ! have promtool; then apt_install prometheus; fi
# headless Chromium opens the HTML audit report and screenshots its charts (tests/e2e/report.rs),
# and is driven over the DevTools protocol by the browser tests (tests/e2e/common/cdp.rs)
if ! have chromium; then apt_install chromium; fi
# ffmpeg (with libx264) sends and receives live H.264/AAC over RTP through the stream
# channel (tests/e2e/stream.rs)
if ! have ffmpeg || ! have ffprobe; then apt_install ffmpeg; fi
# nats-server (JetStream) is the source and the destination of the messages channel's
# NATS ends (tests/e2e/messages_nats.rs)
if ! have nats-server; then apt_install nats-server; fi
# fincore (util-linux) counts a file's pages in the page cache: the streams that hand back
# what lies behind them (fsx::DropBehind)
if ! have fincore; then apt_install util-linux-extra; fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt || true

step "format and lint"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# the docs' links resolve, private items' included
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  step "fuzz: every target for ${FUZZ_SECONDS}s"
  if ! have cargo-fuzz; then cargo install cargo-fuzz --locked; fi
  for target in $(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list); do
    # unoptimised (with AddressSanitizer, overflow checks and debug assertions): a short run
    # to keep every target building and free of shallow crashes; a long run builds with -O
    # (README). Its last lines when it passes; on a crash, the panic and the input too.
    log="$(mktemp)"
    if (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --dev "$target" -- \
      -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048) > "$log" 2>&1; then
      tail -n 3 "$log"
      rm -f "$log"
    else
      tail -n 80 "$log"
      echo "fuzz target $target failed (whole output: $log)" >&2
      exit 1
    fi
  done
fi

step "tests"
cargo nextest run --no-fail-fast
