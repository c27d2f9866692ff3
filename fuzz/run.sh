#!/bin/sh
# fuzz/run.sh [SECONDS] [TARGET...] - build the libFuzzer targets and run each
# for SECONDS (default 60) on a fresh copy of its seed corpus (fuzz/corpus/).
#
# TARGET is fastcgi, uwsgi, session, settings or accesslog (or fuzz_<name>);
# default all five. Prints a table (target, executions, seconds, result) and exits 1
# if any target crashed, 2 if the build failed.
#
# Environment:
#   FUZZ_BUILD_DIR  where objects, binaries, working corpora and crash files
#                   go (default fuzz/_build next to this script)
#   FUZZ_CC         the compiler (default clang; needs -fsanitize=fuzzer)
#   FUZZ_JOBS       targets run at once (default 1)
#   FUZZ_FLAGS      extra libFuzzer flags, e.g. "-max_len=8192"
#   FUZZ_ASAN_OPTIONS, FUZZ_UBSAN_OPTIONS  replace the sanitizer options
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
seconds=${1:-60}
[ $# -gt 0 ] && shift
build=${FUZZ_BUILD_DIR:-$here/_build}
cc=${FUZZ_CC:-clang}
jobs=${FUZZ_JOBS:-1}
extra=${FUZZ_FLAGS:-}

case $seconds in
'' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

all="fuzz_fastcgi fuzz_uwsgi fuzz_session fuzz_settings fuzz_accesslog"
targets=
for t in "$@"; do
    t=fuzz_${t#fuzz_}
    case " $all " in
    *" $t "*) targets="$targets $t" ;;
    *) echo "$0: unknown target '$t' (one of: $all)" >&2; exit 2 ;;
    esac
done
[ -n "$targets" ] || targets=$all

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "$0: $cc not found (libFuzzer needs clang)" >&2
    exit 2
fi

# ---- build ------------------------------------------------------------------
version=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$top/configure.ac")
confuse=$(pkg-config --cflags --libs libconfuse 2>/dev/null || echo -lconfuse)
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 -fno-omit-frame-pointer $san -Wall -Wextra -Wno-unused-parameter \
-D_GNU_SOURCE -DPACKAGE_VERSION=\"$version\" -I$top/include -I$top/src/core -I$top/src/proto"
# What the fuzzers link: the core and the protocol layers, nothing above.
srcs="core/buf core/util core/cidr core/signals proto/proto_fastcgi proto/proto_uwsgi proto/session
proto/session_fastcgi proto/session_uwsgi core/settings core/settings_table
core/settings_cli core/settings_file core/log core/accesslog"

mkdir -p "$build/obj" "$build/bin" || exit 2
echo "building fuzz targets in $build"
objs=
for s in $srcs; do
    # shellcheck disable=SC2086
    o="$build/obj/${s#*/}.o"
    $cc $cflags -fsanitize=fuzzer-no-link -c "$top/src/$s.c" -o "$o" || exit 2
    objs="$objs $o"
done
for t in $targets; do
    # shellcheck disable=SC2086
    $cc $cflags -fsanitize=fuzzer "$here/$t.c" $objs $confuse -lpthread -o "$build/bin/$t" ||
        exit 2
done

# ---- run --------------------------------------------------------------------
# Our own options, not the caller's (make check exports ones meant for the
# server): leaks count as failures (libFuzzer's default) and UBSan stops at
# the first report so that libFuzzer saves the input.
ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1}
UBSAN_OPTIONS=${FUZZ_UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS

run_one() {
    t=$1
    name=${t#fuzz_}
    work=$build/corpus/$name
    rm -rf "$work"
    mkdir -p "$work" "$build/crashes"
    if [ -d "$here/corpus/$name" ]; then
        cp -R "$here/corpus/$name/." "$work/"
    fi
    start=$(date +%s)
    dict=
    [ -f "$here/dict/$name.dict" ] && dict=-dict=$here/dict/$name.dict
    # shellcheck disable=SC2086
    "$build/bin/$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/crashes/$name-" $dict $extra "$work" \
        >"$build/$name.log" 2>&1
    echo $? >"$build/$name.rc"
    echo $(($(date +%s) - start)) >"$build/$name.secs"
}

running=0
for t in $targets; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

# ---- report -----------------------------------------------------------------
status=0
printf '%-16s %12s %8s  %s\n' target executions seconds result
for t in $targets; do
    name=${t#fuzz_}
    log=$build/$name.log
    rc=$(cat "$build/$name.rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    [ -n "$secs" ] || secs=$(cat "$build/$name.secs" 2>/dev/null)
    if [ "$rc" = 0 ]; then
        result=ok
    else
        status=1
        result=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        [ -n "$result" ] || result="failed (exit $rc), see $log"
    fi
    printf '%-16s %12s %8s  %s\n' "$name" "${execs:-?}" "${secs:-?}" "$result"
done
exit $status
