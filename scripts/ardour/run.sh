#!/usr/bin/env bash
# Headless Ardour 7 check of the ImprovNet VST3 (see docs/ardour-check.md).
# Installs nothing: it checks the prerequisites, copies the Lua DSP script into
# ~/.config/ardour7/scripts, scans the bundle into Ardour's VST3 cache, builds a 45 s session with
# ardour7-lua, exports it 4 times (twice plain, once with a 3 s worker stall, once with "Delay"
# automated 8 -> 2) and compares the exports.
# Env: EXPORT_TIMEOUT (s per export, default 300), OUT (default /tmp/improvnet-ardour), BUNDLE (default ~/.vst3/ImprovNet.vst3),
#      IMPROVNET_MODEL (default <repo>/models/improvnet-small), SECONDS_LEN (45), SEED (7).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-/tmp/improvnet-ardour}"
BUNDLE="${BUNDLE:-$HOME/.vst3/ImprovNet.vst3}"
export IMPROVNET_MODEL="${IMPROVNET_MODEL:-$REPO/models/improvnet-small}"
LEN="${SECONDS_LEN:-45}"
SEED="${SEED:-7}"
NAME=improvnet-check

fail() { echo "MISSING: $*" >&2; exit 2; }
for t in ardour7-lua ardour7-export sox soxi python3 cmp; do command -v "$t" >/dev/null || fail "$t (apt-get install ardour sox)"; done
python3 -c 'import numpy' 2>/dev/null || fail "python3 numpy"
SCANNER=/usr/lib/ardour7/ardour-vst3-scanner
[ -x "$SCANNER" ] || fail "$SCANNER"
[ -f "$BUNDLE/Contents/x86_64-linux/ImprovNet.so" ] || fail "VST3 bundle $BUNDLE (copy target/bundled/ImprovNet.vst3 to ~/.vst3/)"
case "$BUNDLE" in "$HOME/.vst3/"*) ;; *) fail "the bundle must be in ~/.vst3 (Ardour's default VST3 path)";; esac
[ -f "$IMPROVNET_MODEL/model.safetensors" ] || fail "model $IMPROVNET_MODEL"
grep -q 'name="hide-dummy-backend" value="0"' "$HOME/.config/ardour7/config" 2>/dev/null \
  || fail '<Option name="hide-dummy-backend" value="0"/> in <Config> of ~/.config/ardour7/config'

mkdir -p "$HOME/.config/ardour7/scripts" "$OUT"
cp "$HERE/improvnet_pattern.lua" "$HOME/.config/ardour7/scripts/"
# Headless Ardour only reads the VST3 cache: scan the bundle (again) so the cache matches it.
# Ardour takes the cache only if it is strictly newer than the module (whole seconds): a bundle
# copied in the same second as the scan would count as "updated" and not load.
sleep 1
LD_LIBRARY_PATH=/usr/lib/ardour7 "$SCANNER" -f "$BUNDLE" > "$OUT/scan.log" 2>&1 || fail "scan of $BUNDLE (see $OUT/scan.log)"

echo "== building the session ($LEN s, seed $SEED) in $OUT/session"
rm -rf "$OUT/session" "$OUT"/*.wav "$OUT"/*.events
IN_SESSION_DIR="$OUT/session" IN_SESSION_NAME=$NAME IN_SECONDS=$LEN IN_SEED=$SEED \
  ardour7-lua "$HERE/build_session.lua" > "$OUT/build.log" 2>&1 || { tail "$OUT/build.log"; exit 1; }
grep -E "^set |automation at|session range" "$OUT/build.log" | sed 's/^/   /'
# The plugin's own saved state must hold what was set (else the exports run on defaults).
python3 - "$OUT/session/$NAME.ardour" "$SEED" <<'PY' || exit 1
import base64, json, re, sys
xml = open(sys.argv[1]).read()
raw = base64.b64decode(re.search(r"<chunk>([^<]*)</chunk>", xml).group(1))
state = json.loads(raw[raw.index(b"{"):raw.rindex(b"}") + 1])["params"]
got = (state["rate"]["f32"], state["fidelity"]["i32"], state["seed"]["i32"])
want = (1.0, 1, int(sys.argv[2]))
print(f"   saved plugin state: rate {got[0]}, fidelity {got[1]}, seed {got[2]}")
sys.exit(0 if got == want else f"saved plugin state {got} is not the session's {want}")
PY

# export SNAPSHOT LABEL [ENV=VAL...]: 32-bit float wav; retried once (ardour7-export can crash at exit).
declare -A WALL
export_one() {
  local snap=$1 label=$2; shift 2
  local wav="$OUT/$label.wav"
  for try in 1 2; do
    rm -f "$wav"
    local t0 t1; t0=$(date +%s.%N)
    env "$@" timeout "${EXPORT_TIMEOUT:-300}" ardour7-export -b float "$OUT/session" "$snap" -o "$wav" > "$OUT/$label.log" 2>&1 || true
    t1=$(date +%s.%N)
    if [ -s "$wav" ] && [ "$(soxi -s "$wav" 2>/dev/null || echo 0)" -ge $((LEN * 48000)) ]; then
      WALL[$label]=$(printf '%.1f' "$(echo "$t1 - $t0" | bc -l)")
      echo "   export $label: ${WALL[$label]} s (try $try)"
      python3 "$HERE/analyze.py" --events "$wav" > "$OUT/$label.events"
      return 0
    fi
    echo "   export $label failed (try $try): $(grep -v DummyMidi "$OUT/$label.log" | tail -1)"
  done
  return 1
}

echo "== exports"
export_one $NAME plain1 || true
export_one $NAME plain2 || true
export_one $NAME stall IMPROVNET_WORKER_STALL_MS=3000 || true
export_one $NAME-auto auto || true

# Sample data only: the float-wav header differs between runs (a timestamp in the PEAK chunk).
pcm_md5() { sox -V1 "$OUT/$1.wav" -t f32 - 2>/dev/null | md5sum | cut -c1-12; }
same() { [ -s "$OUT/$2.wav" ] || { echo "n/a ($2 missing)"; return; }; [ "$(pcm_md5 "$1")" = "$(pcm_md5 "$2")" ] && echo yes || echo no; }
same_ev() { [ -s "$OUT/$2.events" ] || { echo "n/a"; return; }; cmp -s "$OUT/$1.events" "$OUT/$2.events" && echo yes || echo "no ($(diff "$OUT/$1.events" "$OUT/$2.events" | grep -c '^[<>]') event lines differ)"; }
echo "== plain1 windows"
python3 "$HERE/analyze.py" "$OUT/plain1.wav" --delay 2 | sed 's/^/   /'
REF1=$(python3 "$HERE/analyze.py" "$OUT/plain1.wav" --delay 2 | tail -1)
REFS=$( [ -s "$OUT/stall.wav" ] && python3 "$HERE/analyze.py" "$OUT/stall.wav" --delay 2 | tail -1 || echo "no export")
{
  echo "== summary ($(date -u +%F), $(ardour7-lua -V 2>/dev/null | head -1 | tr -s ' '), bundle $(stat -c %y "$BUNDLE/Contents/x86_64-linux/ImprovNet.so" | cut -d. -f1))"
  echo "export wall s: plain1 ${WALL[plain1]:-failed}, plain2 ${WALL[plain2]:-failed}, stall(3 s) ${WALL[stall]:-failed/timeout}, delay-automation(8->2) ${WALL[auto]:-failed}"
  echo "plain1 == plain2: audio $(same plain1 plain2), MIDI $(same_ev plain1 plain2)"
  echo "plain1 == stall:  audio $(same plain1 stall), MIDI $(same_ev plain1 stall)"
  echo "plain1: $REF1; stall: $REFS"
  echo "auto: $(python3 "$HERE/analyze.py" "$OUT/auto.wav" --delay 2 | grep -c 'out *[1-9]') of $((LEN / 5)) windows have output"
} | tee "$OUT/summary.txt"
