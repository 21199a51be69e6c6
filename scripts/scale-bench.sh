#!/usr/bin/env bash
# The scaling measurement in one run, for a machine with many cores lent for a few minutes:
# `isogate bench` on a quic and a diode lab (the limits, idle CPU, 4 KiB files, the large
# file with its CPU ceiling, many large files at once), then the diode's large file again
# paced at 10,000 Mbit/s (the lab's 4,000 caps a file near 400 MiB/s on any machine). Each
# node's cores are printed beside each figure; the two summary tables come last.
#
#   scripts/scale-bench.sh [BINARY]   (default: this checkout's target/release/isogate)
#
# Environment: OUT, the folder for the full reports (default: scale-bench, here);
# SMALL_FILES, PARALLEL, PARALLEL_MIB, BIG_MIB (defaults 10000, 16, 256, 1024);
# LIMIT_S, the most seconds each bench may run (default 240; an interrupt from the
# terminal does not reach a bench, which runs to its end or its limit). Needs about
# BIG_MIB + PARALLEL x PARALLEL_MIB MiB free under OUT, twice over (the sending node's
# spool and the receiving node's inbox).
set -euo pipefail

bin=${1:-$(dirname "$0")/../target/release/isogate}
out=${OUT:-scale-bench}
small=${SMALL_FILES:-10000}
parallel=${PARALLEL:-16}
parallel_mib=${PARALLEL_MIB:-256}
big=${BIG_MIB:-1024}
limit=${LIMIT_S:-240}

if [ ! -x "$bin" ]; then
  echo "scale-bench: no executable isogate at $bin (build it with cargo build --release)" >&2
  exit 2
fi
mkdir -p "$out"
labs=$(mktemp -d "$out/labs.XXXXXX")
trap 'rm -rf "$labs"' EXIT

echo "scale-bench: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $("$bin" --version)"

# both links, every file figure but the latency run and the 4 GiB memory figure
status=0
timeout -k 15 "$limit" "$bin" bench --dir "$labs/links" --port-base 27600 \
  --only files --link quic --link diode \
  --small-files "$small" --latency-secs 0 --big-mib "$big" --huge-mib 0 \
  --parallel "$parallel" --parallel-mib "$parallel_mib" \
  >"$out/links.txt" 2>"$out/links.log" || status=$?
sleep 1 # the nodes of a bench cut short by the timeout are still going
rm -rf "$labs/links"

# the diode's large file without the lab's pacing cap
timeout -k 15 "$limit" "$bin" bench --dir "$labs/diode" --port-base 27700 \
  --only files --link diode --diode-rate-mbit 10000 \
  --small-files 0 --latency-secs 0 --big-mib "$big" --huge-mib 0 --parallel 0 \
  >"$out/diode-10g.txt" 2>"$out/diode-10g.log" || status=$?

for report in links diode-10g; do
  echo
  echo "== $report (full report: $out/$report.txt)"
  # the limits, each figure with its CPU lines, then the summary table
  sed '/^summary (/,$d' "$out/$report.txt" |
    grep -E '^link |^  (cores|SHA-256|AES-256|loopback|disk|file system)|files of|MiB file|MiB at once|CPU for|idle,|paced at|disk meanwhile' || true
  sed -n '/^summary (/,$p' "$out/$report.txt"
done
if [ "$status" -ne 0 ]; then
  echo "scale-bench: a bench failed or ran past ${limit} s (exit $status); see $out/*.log" >&2
fi
exit "$status"
