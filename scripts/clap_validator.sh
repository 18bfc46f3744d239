#!/usr/bin/env bash
# Build clap-validator from source and run it against the ImprovNet CLAP bundle.
#
# Needs:
#   - clap-validator's public source, https://github.com/free-audio/clap-validator
#     (a bare git mirror or a source folder). It is not on crates.io.
#   - clack, https://github.com/prokopyl/clack, at the commit clap-validator pins
#     (its Cargo.lock / tests/*/Cargo.toml say `rev = "<40 hex>"`; a bare git
#     mirror containing that commit, or a source folder already checked out at
#     it). clap-validator itself does not use clack: only its `tests/clack-*`
#     workspace members do, but cargo resolves the whole workspace, so the git
#     dependency is redirected to the local copy with a
#     [patch."https://github.com/prokopyl/clack"] section (no network access to
#     github needed). Everything else comes from crates.io.
#   - cargo/rustc >= clap-validator's MSRV (1.95 for 0.4.1), git, tar.
#   - a release bundle: `cargo xtask bundle improvnet --release`
#     (target/bundled/ImprovNet.clap), and a model for the plugin to load
#     (IMPROVNET_MODEL, default models/improvnet-small).
#
# The build happens outside the repository (default /tmp/clap-validator-build),
# at nice 10. The bundle is copied first, so rebuilding while the fuzzer runs
# does not disturb it.
#
# Usage:
#   scripts/clap_validator.sh [--cv PATH] [--clack PATH] [--plugin PATH]
#                             [--duration 5m] [--limit N] [--jobs N]
#                             [--work DIR] [--no-validate] [--no-fuzz]
# or the same through env vars: CV_SRC, CLACK_SRC, PLUGIN, FUZZ_DURATION,
# FUZZ_LIMIT, FUZZ_JOBS, CV_WORK, CARGO_TARGET_DIR, IMPROVNET_MODEL.
# Logs: $CV_WORK/logs/{validate.log,validate.json,fuzz.log,fuzz.json}.
# Exit status: 0 when validate has no failures and the fuzzer found nothing,
# 1 otherwise, 2 on a usage/build error.
#
# Last run (2026-12-07 12:01 UTC, clap-validator 0.4.1 @ b2f1d9b, clack @ 3f9b32dc,
# release bundle built from commit b2c5a43, 2-core shared machine):
#   validate: 44 tests run, 36 passed, 0 failed, 0 warnings, 8 skipped
#     (preset-discovery-{crawl,descriptor-consistency,load}: no preset-discovery
#     factory; process-audio-double-{out-of-place,in-place}: no 64-bit audio;
#     process-audio-denormals: no input audio ports;
#     layout-audio-ports-activation, layout-configurable-audio-ports: extension
#     not implemented)
#   fuzz -d 5m -l 1000 (2 jobs): no failures; 496 chunks passed; 11,934 host
#     restarts on request_restart (latency follows the fuzzed delay/align
#     params and is only reported from activate).
#     The run before the latency/subnormal fixes had found
#     clap_host_latency::changed outside activate (57x), two 60 s chunk
#     timeouts and subnormal output on the stereo layout.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

CV_SRC=${CV_SRC:-/work/.mirror/free-audio+clap-validator/repo}
CLACK_SRC=${CLACK_SRC:-/work/.mirror/prokopyl+clack/repo}
PLUGIN=${PLUGIN:-$repo_root/target/bundled/ImprovNet.clap}
FUZZ_DURATION=${FUZZ_DURATION:-5m}
FUZZ_LIMIT=${FUZZ_LIMIT:-1000}
FUZZ_JOBS=${FUZZ_JOBS:-}
CV_WORK=${CV_WORK:-/tmp/clap-validator-build}
IMPROVNET_MODEL=${IMPROVNET_MODEL:-$repo_root/models/improvnet-small}
do_validate=1
do_fuzz=1

usage() { sed -n '/^# Usage:/,/^# 1 otherwise/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --cv) CV_SRC=$2; shift 2 ;;
        --clack) CLACK_SRC=$2; shift 2 ;;
        --plugin) PLUGIN=$2; shift 2 ;;
        --duration|-d) FUZZ_DURATION=$2; shift 2 ;;
        --limit|-l) FUZZ_LIMIT=$2; shift 2 ;;
        --jobs|-j) FUZZ_JOBS=$2; shift 2 ;;
        --work) CV_WORK=$2; shift 2 ;;
        --no-validate) do_validate=0; shift ;;
        --no-fuzz) do_fuzz=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CV_WORK/target}
export IMPROVNET_MODEL
case $CV_WORK in "$repo_root"|"$repo_root"/*)
    echo "CV_WORK ($CV_WORK) must be outside the repository" >&2; exit 2 ;;
esac

log() { printf '\n== %s\n' "$*" >&2; }
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

is_git_dir() { git -C "$1" rev-parse --git-dir >/dev/null 2>&1; }

# Extract (or copy) a source tree into $2. $3 = commit for git sources.
# Reuses $2 when it already holds that exact commit.
materialize() {
    local src=$1 dest=$2 rev=$3 stamp
    if [[ -f $src/Cargo.toml ]]; then
        stamp="dir:$(cd "$src" && pwd)"
        # a plain folder: copy it (without build output) so the patch below
        # never touches the caller's checkout
        rm -rf "$dest"; mkdir -p "$dest"
        tar -C "$src" --exclude=./target --exclude=./.git -cf - . | tar -x -C "$dest"
    elif is_git_dir "$src"; then
        stamp="git:$(git -C "$src" rev-parse "$rev^{commit}")"
        if [[ -f $dest/.cv-stamp && $(cat "$dest/.cv-stamp") == "$stamp" ]]; then
            return 0
        fi
        rm -rf "$dest"; mkdir -p "$dest"
        git -C "$src" archive "$rev" | tar -x -C "$dest"
    else
        echo "$src is neither a source folder (Cargo.toml) nor a git repository" >&2
        exit 2
    fi
    # git archive / tar keep old timestamps, which can be older than a previous
    # build in the same target folder: make cargo see the files as new
    find "$dest" -type f -exec touch {} +
    echo "$stamp" > "$dest/.cv-stamp"
}

mkdir -p "$CV_WORK/logs"
logs=$CV_WORK/logs

# --- sources ---------------------------------------------------------------
cv_rev="folder, commit not checked"
if [[ ! -f $CV_SRC/Cargo.toml ]] && is_git_dir "$CV_SRC"; then
    cv_rev=$(git -C "$CV_SRC" rev-parse HEAD)
fi
log "clap-validator source: $CV_SRC ($cv_rev)"
materialize "$CV_SRC" "$CV_WORK/clap-validator" "${cv_rev%% *}"
cv_dir=$CV_WORK/clap-validator

clack_rev=$(grep -rhoE 'github\.com/prokopyl/clack\?rev=[0-9a-f]{40}' "$cv_dir/Cargo.lock" 2>/dev/null \
    | head -n1 | sed 's/.*rev=//' || true)
if [[ -z $clack_rev ]]; then
    clack_rev=$(grep -rhoE 'prokopyl/clack", rev = "[0-9a-f]{40}"' "$cv_dir" --include=Cargo.toml \
        | head -n1 | grep -oE '[0-9a-f]{40}' || true)
fi
echo "clack commit pinned by clap-validator: ${clack_rev:-<none found>}" >&2

clack_used=$clack_rev
if [[ ! -f $CLACK_SRC/Cargo.toml ]] && is_git_dir "$CLACK_SRC"; then
    if [[ -z $clack_rev ]] || ! git -C "$CLACK_SRC" cat-file -e "$clack_rev^{commit}" 2>/dev/null; then
        echo "WARNING: clack commit ${clack_rev:-?} not in $CLACK_SRC, using its HEAD" >&2
        clack_used=$(git -C "$CLACK_SRC" rev-parse HEAD)
    fi
else
    clack_used="folder $CLACK_SRC (commit not checked)"
fi
log "clack source: $CLACK_SRC ($clack_used)"
materialize "$CLACK_SRC" "$CV_WORK/clack" "${clack_used%% *}"
clack_dir=$CV_WORK/clack

# Redirect clack's git dependency to the local copy (only once): every crate
# that Cargo.lock takes from the clack repository (else the crates the
# Cargo.toml files name), mapped to the folder of the clack crate of that name.
if ! grep -q '^\[patch."https://github.com/prokopyl/clack"\]' "$cv_dir/Cargo.toml"; then
    clack_crates=$(awk '/^name = /{n=$3} /^source = .*prokopyl\/clack/{gsub(/"/,"",n); print n}' \
        "$cv_dir/Cargo.lock" 2>/dev/null | sort -u)
    if [[ -z $clack_crates ]]; then
        clack_crates=$(grep -rhoE '^[a-z_-]+ *= *\{[^}]*prokopyl/clack' "$cv_dir" --include=Cargo.toml \
            | sed 's/ *=.*//' | sort -u || true)
    fi
    if [[ -n $clack_crates ]]; then
        echo '[patch."https://github.com/prokopyl/clack"]' > "$CV_WORK/clack-patch.toml"
        for name in $clack_crates; do
            dir=$(grep -lE "^name *= *\"$name\"" "$clack_dir"/*/Cargo.toml | head -n1 || true)
            [[ -n $dir ]] || { echo "clack crate $name not found in $clack_dir" >&2; exit 2; }
            echo "$name = { path = \"$(dirname "$dir")\" }" >> "$CV_WORK/clack-patch.toml"
        done
        { echo; cat "$CV_WORK/clack-patch.toml"; } >> "$cv_dir/Cargo.toml"
        echo "patched clap-validator's Cargo.toml:" >&2; cat "$CV_WORK/clack-patch.toml" >&2
    fi
fi

# --- build -----------------------------------------------------------------
log "building clap-validator (target: $CARGO_TARGET_DIR)"
(cd "$cv_dir" && nice -n 10 cargo build --release -p clap-validator) || {
    echo "clap-validator build failed" >&2; exit 2; }
cv_bin=$CARGO_TARGET_DIR/release/clap-validator
"$cv_bin" --version >&2

# --- plugin copy -----------------------------------------------------------
[[ -e $PLUGIN ]] || { echo "plugin bundle not found: $PLUGIN" >&2; exit 2; }
[[ -e $IMPROVNET_MODEL ]] || echo "WARNING: IMPROVNET_MODEL=$IMPROVNET_MODEL does not exist" >&2
plugin_copy=$CV_WORK/$(basename "$PLUGIN" .clap)-cv.clap
rm -rf "$plugin_copy"
cp -a "$PLUGIN" "$plugin_copy"
log "testing a copy of $PLUGIN: $plugin_copy (IMPROVNET_MODEL=$IMPROVNET_MODEL)"

status=0
validate_summary="not run"
fuzz_summary="not run"
validate_problems=""
fuzz_kinds=""

# --- validate --------------------------------------------------------------
if [[ $do_validate == 1 ]]; then
    log "clap-validator validate"
    vrc=0
    "$cv_bin" validate "$plugin_copy" > "$logs/validate.log" 2>&1 || vrc=$?
    "$cv_bin" -v quiet validate --json "$plugin_copy" > "$logs/validate.json" 2>/dev/null || true
    validate_summary=$(strip_ansi < "$logs/validate.log" | grep -E '^[0-9]+ tests run' | tail -n1 || true)
    [[ -n $validate_summary ]] || validate_summary="no summary line (exit $vrc), see $logs/validate.log"
    # non-passing tests: "name: status: detail"
    if command -v jq >/dev/null && jq -e .results "$logs/validate.json" >/dev/null 2>&1; then
        validate_problems=$(jq -r '.results[] | select(.status.code != "success")
            | "  \(.test[].test): \(.status.code): \(.status.details // "" | gsub("\n"; " "))"' \
            "$logs/validate.json")
    else
        validate_problems=$(strip_ansi < "$logs/validate.log" | awk '
            /^│ ┌─ / { name = $0; sub(/^│ ┌─ /, "", name); detail = ""; next }
            /^│ │ │ / && detail == "" { detail = $0; sub(/^│ │ │ /, "", detail) }
            /^│ └── / { if ($3 != "PASSED") printf "  %s: %s: %s\n", name, $3, detail }')
    fi
    if [[ $vrc != 0 ]] || ! grep -qE ' 0 failed' <<< "$validate_summary"; then status=1; fi
fi

# --- fuzz ------------------------------------------------------------------
if [[ $do_fuzz == 1 ]]; then
    log "clap-validator fuzz -d $FUZZ_DURATION -l $FUZZ_LIMIT${FUZZ_JOBS:+ -j $FUZZ_JOBS}"
    frc=0
    # -v debug: one "OK '<id>' (seed N)" line per passing chunk, so the chunks can be counted
    fuzz_args=(-v debug fuzz -d "$FUZZ_DURATION" -l "$FUZZ_LIMIT" --json)
    [[ -n $FUZZ_JOBS ]] && fuzz_args+=(-j "$FUZZ_JOBS")
    "$cv_bin" "${fuzz_args[@]}" "$plugin_copy" > "$logs/fuzz.json" 2> "$logs/fuzz.log" || frc=$?
    if command -v jq >/dev/null && jq -e 'type == "array"' "$logs/fuzz.json" >/dev/null 2>&1; then
        nfail=$(jq length "$logs/fuzz.json")
        # kind = status type + first line of the details, digits folded to '#'
        fuzz_kinds=$(jq -r '.[] | "\(.status.type): \((.status.details // "") | split("\n")[0])"' \
            "$logs/fuzz.json" | sed -E 's/(^|[^A-Za-z_0-9])[0-9]+/\1#/g' | sort | uniq -c | sort -rn | sed 's/^/ /')
    elif command -v python3 >/dev/null && [[ -s $logs/fuzz.json ]]; then
        nfail=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$logs/fuzz.json")
        fuzz_kinds=$(python3 -c '
import json, re, sys, collections
c = collections.Counter()
for r in json.load(open(sys.argv[1])):
    d = (r["status"].get("details") or "").split("\n")[0]
    c[r["status"]["type"] + ": " + re.sub(r"(^|[^A-Za-z_0-9])[0-9]+", r"\1#", d)] += 1
for k, n in c.most_common(): print(f"  {n:6d} {k}")' "$logs/fuzz.json")
    else
        nfail=$(strip_ansi < "$logs/fuzz.log" | grep -c ' ERROR ' || true)
    fi
    nok=$(strip_ansi < "$logs/fuzz.log" | grep -c "DEBUG OK '" || true)
    nrestart=$(strip_ansi < "$logs/fuzz.log" | grep -c 'Plugin has requested a restart' || true)
    chunks="$nok passing chunk(s), $nrestart host restart(s) on request_restart"
    if [[ $nfail == 0 && $frc == 0 ]]; then
        fuzz_summary="OK, no failures in $FUZZ_DURATION ($chunks)"
    else
        fuzz_summary="$nfail failing chunk(s) in $FUZZ_DURATION, $chunks (exit $frc; limit $FUZZ_LIMIT)"
        status=1
    fi
    [[ $frc == 0 || $nfail != 0 ]] || fuzz_summary="$fuzz_summary; see $logs/fuzz.log"
fi

# --- summary ---------------------------------------------------------------
cat <<EOF

==================== clap-validator summary ====================
clap-validator: $("$cv_bin" --version) @ $cv_rev
clack:          $clack_used
plugin:         $PLUGIN (tested as $plugin_copy)
validate:       $validate_summary
${validate_problems:+$validate_problems
}fuzz:           $fuzz_summary
${fuzz_kinds:+$fuzz_kinds
}logs:           $logs
================================================================
EOF
exit $status
