#!/usr/bin/env bash
# run.sh - build and run the libFuzzer targets of hlo2onnx.
#
#   tests/fuzz/run.sh SECONDS [JOBS]
#
# Builds fuzz_parse (the MLIR parser) and fuzz_convert (text -> ONNX in
# memory) with clang, -fsanitize=fuzzer,address,undefined, in build-fuzz/
# (BUILD=... to change), seeds a corpus for each from tests/fixtures/*.mlir,
# tests/fixtures/regress/*.mlir, tests/fuzz/seeds.tar.xz and variants of the
# fixtures made here (truncations, one function at a time), then runs each
# target for SECONDS seconds with JOBS processes (default 1), one target
# after the other.
#
# SECONDS is wall-clock time.  With BUDGET=cpu it is CPU time instead (JOBS
# must be 1): on a loaded machine the fuzzer then runs until it has had
# SECONDS of CPU, and is stopped with SIGINT, which makes libFuzzer print its
# final statistics.
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
# grow from run to run), MAX_LEN (default 65536), CC (default clang),
# BUDGET (wall or cpu).
set -euo pipefail

SECONDS_PER_TARGET="${1:?usage: tests/fuzz/run.sh SECONDS [JOBS]}"
JOBS="${2:-1}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build-fuzz}"
WORK="${WORK:-$BUILD/fuzz-work}"
TARGETS="${TARGETS:-fuzz_parse fuzz_convert}"
MAX_LEN="${MAX_LEN:-65536}"
BUDGET="${BUDGET:-wall}"
REGRESS="$ROOT/tests/fixtures/regress"
CC="${CC:-clang}"
if [ "$BUDGET" = cpu ] && [ "$JOBS" != 1 ]; then
  echo "run.sh: BUDGET=cpu needs JOBS=1" >&2
  exit 2
fi

echo "== build ($BUILD)"
mkdir -p "$BUILD"
CC="$CC" cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DH2O_FUZZ=ON -DH2O_SANITIZE=OFF -DH2O_TESTS=OFF >"$BUILD/cmake.log" 2>&1 ||
  { cat "$BUILD/cmake.log"; exit 2; }
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "$JOBS" --target $TARGETS >"$BUILD/build.log" 2>&1 ||
  { tail -50 "$BUILD/build.log"; exit 2; }

# ---- seeds --------------------------------------------------------------
SEEDS="$WORK/seeds"
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$REGRESS"
shopt -s nullglob
for f in "$ROOT"/tests/fixtures/*.mlir "$REGRESS"/*.mlir; do
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
# modules the Python tests convert, reduced to those adding coverage
# (tests/fuzz/harvest_plugin.py says how they were made)
if [ -f "$ROOT/tests/fuzz/seeds.tar.xz" ]; then
  tar -C "$SEEDS" -xJf "$ROOT/tests/fuzz/seeds.tar.xz"
fi
echo "== $(ls "$SEEDS" | wc -l) seed inputs"

# CPU seconds (user + system) used so far by process $1.
cpu_of() {
  awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) / hz) }' "/proc/$1/stat" 2>/dev/null ||
    echo 0
}

# ---- run ----------------------------------------------------------------
found=0
STATS="$WORK/stats.txt"
for t in $TARGETS; do
  corpus="$WORK/corpus-$t"
  art="$WORK/artifacts-$t"
  mkdir -p "$corpus" "$art"
  log="$WORK/$t.log"
  echo "== $t: ${SECONDS_PER_TARGET}s ($BUDGET) x $JOBS job(s); log $log"
  args=(-max_len="$MAX_LEN" -dict="$ROOT/tests/fuzz/mlir.dict" -timeout=20
        -rss_limit_mb=2560 -malloc_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$art/")
  if [ "$BUDGET" = cpu ]; then
    args+=(-max_total_time=0)
  else
    args+=(-max_total_time="$SECONDS_PER_TARGET")
  fi
  if [ "$JOBS" -gt 1 ]; then
    args+=(-jobs="$JOBS" -workers="$JOBS")
  fi
  rc=0
  start=$(date +%s)
  if [ "$BUDGET" = cpu ]; then
    "$BUILD/$t" "${args[@]}" "$corpus" "$SEEDS" >"$log" 2>&1 &
    pid=$!
    cpu=0
    while kill -0 "$pid" 2>/dev/null; do
      cpu=$(cpu_of "$pid")
      if [ "$cpu" -ge "$SECONDS_PER_TARGET" ]; then kill -INT "$pid"; break; fi
      sleep 5
    done
    wait "$pid" || rc=$?
    # 72: libFuzzer's exit code after SIGINT (-interrupted_exitcode)
    [ "$rc" = 72 ] && rc=0
  else
    /usr/bin/env time -f "%U %S" -o "$WORK/$t.time" \
      "$BUILD/$t" "${args[@]}" "$corpus" "$SEEDS" >"$log" 2>&1 || rc=$?
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$WORK/$t.time" 2>/dev/null || echo "?")
  fi
  wall=$(($(date +%s) - start))
  # with -jobs the per-job logs are fuzz-N.log in the current directory
  if [ "$JOBS" -gt 1 ]; then cat fuzz-*.log >>"$log" 2>/dev/null && rm -f fuzz-*.log; fi
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  last=$(grep -h -E '^#[0-9]+.*cov:' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  ncorp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  line="$(date -u +%FT%TZ) $t budget=$BUDGET:$SECONDS_PER_TARGET jobs=$JOBS execs=$execs"
  line+=" cov=$cov ft=$ft corpus=$ncorp cpu_s=$cpu wall_s=$wall rc=$rc"
  echo "$line" | tee -a "$STATS"

  for a in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
    kind="$(basename "$a" | cut -d- -f1)"
    found=1
    sum="$(sha1sum "$a" | cut -c1-12)"
    dest="$REGRESS/$t-$kind-$sum.mlir"
    echo "   finding: $a"
    # minimise crashes; keep leaks, timeouts and ooms as found
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
