#!/usr/bin/env bash
# run.sh - build and run the libFuzzer targets of hlo2onnx.
#
#   tests/fuzz/run.sh SECONDS [JOBS]
#
# Builds fuzz_parse (the MLIR parser) and fuzz_convert (text -> ONNX in
# memory) with clang, -fsanitize=fuzzer,address,undefined, in build-fuzz/
# (BUILD=... to change), seeds a corpus for each from tests/fixtures/*.mlir,
# tests/fixtures/regress/*, tests/fuzz/seeds/* and variants of them made here
# (truncations, one function at a time), then runs each target for SECONDS
# seconds with JOBS processes (default 1), one target after the other.
#
# At the end it prints, per target, the executions, libFuzzer's coverage
# (cov: edges, ft: features), the corpus size and the CPU time, and appends
# them to $WORK/stats.txt.  Every crash, leak, timeout or out-of-memory input
# is minimised into tests/fixtures/regress/<target>-<kind>-<sha1>.mlir; turn
# each into a named fixture (bad_<what>.mlir) when its fix is in.  The exit
# code is 1 when something was found.
#
# Environment: TARGETS (default "fuzz_parse fuzz_convert"), BUILD (default
# build-fuzz), WORK (default $BUILD/fuzz-work; corpora are kept there and
# grow from run to run), MAX_LEN (default 65536), CC (default clang).
set -euo pipefail

SECONDS_PER_TARGET="${1:?usage: tests/fuzz/run.sh SECONDS [JOBS]}"
JOBS="${2:-1}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build-fuzz}"
WORK="${WORK:-$BUILD/fuzz-work}"
TARGETS="${TARGETS:-fuzz_parse fuzz_convert}"
MAX_LEN="${MAX_LEN:-65536}"
REGRESS="$ROOT/tests/fixtures/regress"
CC="${CC:-clang}"

echo "== build ($BUILD)"
CC="$CC" cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DH2O_FUZZ=ON -DH2O_SANITIZE=OFF -DH2O_TESTS=OFF >"$BUILD.cmake.log" 2>&1 ||
  { cat "$BUILD.cmake.log"; exit 2; }
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "$JOBS" --target $TARGETS >"$BUILD.build.log" 2>&1 ||
  { tail -50 "$BUILD.build.log"; exit 2; }

# ---- seeds --------------------------------------------------------------
SEEDS="$WORK/seeds"
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$REGRESS"
shopt -s nullglob
for f in "$ROOT"/tests/fixtures/*.mlir "$REGRESS"/* "$ROOT"/tests/fuzz/seeds/*; do
  [ -f "$f" ] || continue
  base="$(basename "$f")"
  cp "$f" "$SEEDS/$base"
  size=$(wc -c <"$f")
  # truncations: the parser's end-of-input paths in every construct
  for frac in 1 2 3; do
    head -c $((size * frac / 4)) "$f" >"$SEEDS/$base.cut$frac"
  done
  # each function of the module on its own (calls to the others then fail)
  awk -v out="$SEEDS/$base.func" '
    /^  func\.func/ { n++; keep = 1; body = "module {\n" }
    keep { body = body $0 "\n" }
    keep && /^  }/ { printf "%s}\n", body > (out n); keep = 0 }
  ' "$f"
done
echo "== $(ls "$SEEDS" | wc -l) seed inputs"

# ---- run ----------------------------------------------------------------
found=0
STATS="$WORK/stats.txt"
for t in $TARGETS; do
  corpus="$WORK/corpus-$t"
  art="$WORK/artifacts-$t"
  mkdir -p "$corpus" "$art"
  log="$WORK/$t.log"
  echo "== $t: ${SECONDS_PER_TARGET}s x $JOBS job(s); log $log"
  args=(-max_len="$MAX_LEN" -dict="$ROOT/tests/fuzz/mlir.dict"
        -max_total_time="$SECONDS_PER_TARGET" -timeout=20 -rss_limit_mb=2560
        -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/")
  if [ "$JOBS" -gt 1 ]; then
    args+=(-jobs="$JOBS" -workers="$JOBS")
  fi
  rc=0
  /usr/bin/env time -f "cpu_seconds %U %S" -o "$WORK/$t.time" \
    "$BUILD/$t" "${args[@]}" "$corpus" "$SEEDS" >"$log" 2>&1 || rc=$?
  # with -jobs the per-job logs are fuzz-N.log in the current directory
  if [ "$JOBS" -gt 1 ]; then cat fuzz-*.log >>"$log" 2>/dev/null && rm -f fuzz-*.log; fi
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  last=$(grep -h -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE).*cov:' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  ncorp=$(ls "$corpus" | wc -l)
  cpu=$(awk '/cpu_seconds/ {printf "%.0f", $2 + $3}' "$WORK/$t.time" 2>/dev/null || echo "?")
  line="$(date -u +%FT%TZ) $t seconds=$SECONDS_PER_TARGET jobs=$JOBS execs=$execs cov=$cov ft=$ft corpus=$ncorp cpu_s=$cpu rc=$rc"
  echo "$line" | tee -a "$STATS"

  for a in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-* "$art"/slow-unit-*; do
    kind="$(basename "$a" | cut -d- -f1)"
    [ "$kind" = slow ] && continue
    found=1
    sum="$(sha1sum "$a" | cut -c1-12)"
    dest="$REGRESS/$t-$kind-$sum.mlir"
    echo "   finding: $a"
    # minimise crashes; keep leaks/timeouts/ooms as found
    if [ "$kind" = crash ]; then
      "$BUILD/$t" -minimize_crash=1 -runs=20000 -exact_artifact_path="$dest" \
        "$a" >"$WORK/minimize.log" 2>&1 || true
    fi
    [ -f "$dest" ] || cp "$a" "$dest"
    mv "$a" "$art/seen-$(basename "$a")"
    echo "   -> $dest"
  done
done
[ "$found" = 0 ] || echo "== findings were written to $REGRESS"
exit "$found"
