#!/bin/sh
# Runs offspring's fuzz targets (fuzz/, cargo-fuzz), one after the other, each for a given time.
#
#   scripts/fuzz.sh [--merge] [SECONDS] [TARGET...]
#
#   SECONDS   how long each target runs (default 600)
#   TARGET    quote_roundtrip, quote_shell, sh_template, validate (default: all four)
#   --merge   afterwards, add the new inputs that raise coverage to fuzz/corpus/TARGET
#             (the committed corpus, which `cargo test` replays)
#
# Installs what is missing: the nightly toolchain, cargo-fuzz, dash and bash (apt-get).
# New inputs go to fuzz/target/corpus/TARGET; the committed seeds in fuzz/corpus/TARGET are
# read, never written, unless --merge. A finding stops the run with a non-zero status and a
# crash file under fuzz/artifacts/TARGET/. Each target's log is kept in fuzz/target/logs/.
#
# quote_shell and sh_template run without a sanitizer (-s none): their code is safe Rust, and
# they keep batches of inputs between runs, which LeakSanitizer would scan after every input.
# quote_shell's inputs are capped at 512 bytes (long words are covered by the unit tests),
# sh_template's at 64 pieces of template: the shells are the cost. quote_shell also runs the
# multibyte locales, which it generates with localedef (Debian package `locales`).
#
# Environment: CARGO_TARGET_DIR is honoured; OFFSPRING_FUZZ_BATCH and OFFSPRING_FUZZ_DISPLAY
# tune quote_shell (see fuzz/fuzz_targets/quote_shell.rs); FUZZ_ARGS adds libFuzzer flags.
set -eu

cd "$(dirname "$0")/../fuzz"

merge=false
if [ "${1-}" = "--merge" ]; then
    merge=true
    shift
fi
seconds=${1:-600}
case $seconds in
    '' | *[!0-9]*) echo "usage: $0 [--merge] [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
targets=${*:-quote_roundtrip quote_shell sh_template validate}

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if ! command -v dash >/dev/null 2>&1 || ! command -v bash >/dev/null 2>&1 \
    || ! command -v localedef >/dev/null 2>&1 || [ ! -e /usr/share/i18n/charmaps/GB18030.gz ]; then
    $sudo apt-get update
    $sudo apt-get install -y dash bash locales
fi

mkdir -p target/logs
for target in $targets; do
    case $target in
        quote_shell) sanitizer="-s none" flags=-max_len=512 ;;
        sh_template) sanitizer="-s none" flags=-max_len=64 ;;
        quote_roundtrip | validate) sanitizer= flags= ;;
        *) echo "unknown target: $target" >&2; exit 2 ;;
    esac
    mkdir -p "target/corpus/$target"
    log=target/logs/$target.log
    echo "== $target: ${seconds}s, log in fuzz/$log"
    # shellcheck disable=SC2086 # $sanitizer and $FUZZ_ARGS are lists of flags
    if ! nice -n 10 cargo +nightly fuzz run -O $sanitizer "$target" \
        "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 $flags ${FUZZ_ARGS-} >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "== $target: FINDING (see fuzz/$log and fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs' "$log" || true
    if $merge; then
        # shellcheck disable=SC2086
        nice -n 10 cargo +nightly fuzz run -O $sanitizer "$target" \
            "corpus/$target" "target/corpus/$target" -- -merge=1 >>"$log" 2>&1
        echo "== $target: merged into fuzz/corpus/$target ($(ls "corpus/$target" | wc -l) files)"
    fi
done
