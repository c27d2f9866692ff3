#!/bin/sh
# tests/fuzz-smoke.sh - make check: each libFuzzer target for a few seconds
# (FUZZ_SMOKE_SECONDS, default 5) on its seed corpus, so the targets keep
# building and the seeds keep passing. Skips (exit 77) without a clang that
# can link -fsanitize=fuzzer. `make fuzz` is the longer run.
here=$(cd "$(dirname "$0")" && pwd)
cc=${FUZZ_CC:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "SKIP: $cc not found (libFuzzer needs clang)"
    exit 77
fi
probe=$(mktemp -d) || exit 99
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' \
    >"$probe/probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" \
    >"$probe/log" 2>&1; then
    cat "$probe/log"
    echo "SKIP: $cc cannot build libFuzzer targets"
    exit 77
fi

FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$PWD/fuzz/_smoke}
export FUZZ_BUILD_DIR FUZZ_CC
sh "$here/../fuzz/run.sh" "${FUZZ_SMOKE_SECONDS:-5}"
rc=$?
# run.sh: 1 = a target failed (table above names the input), 2 = build failed
[ "$rc" -eq 0 ] || exit 1
exit 0
