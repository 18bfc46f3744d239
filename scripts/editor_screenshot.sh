#!/usr/bin/env bash
# Renders the plugin's editor under Xvfb (Mesa software OpenGL) and saves it as docs/editor.png.
#
#   scripts/editor_screenshot.sh [OUT.png]
#
# Installs what it needs with apt-get (Debian/Ubuntu; run as root or with sudo available):
# Xvfb, xauth, xwininfo, ImageMagick's `import`, and the X11/OpenGL runtime libraries baseview
# opens with dlopen. Building needs no -dev packages: baseview speaks X11 through x11rb and loads
# libX11/libGL at run time. The example is `examples/editor_screenshot.rs` (feature `editor`).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-docs/editor.png}
jobs=${CARGO_BUILD_JOBS:-1}
# Program -> Debian package.
declare -A need=(
    [xvfb-run]=xvfb
    [xauth]=xauth
    [xwininfo]=x11-utils
    [import]=imagemagick
)
packages=()
for cmd in "${!need[@]}"; do
    command -v "$cmd" >/dev/null || packages+=("${need[$cmd]}")
done
# Runtime libraries (dlopen'ed; present on most desktops): Mesa's software GL, Xlib, Xcursor.
for lib in libGL.so.1 libX11.so.6 libX11-xcb.so.1 libXcursor.so.1 swrast_dri.so; do
    if ! ldconfig -p | grep -q "$lib" && ! ls /usr/lib/*/dri/"$lib" >/dev/null 2>&1; then
        packages+=(libgl1 libglx-mesa0 libgl1-mesa-dri libx11-6 libx11-xcb1 libxcursor1)
        break
    fi
done
if ((${#packages[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y --no-install-recommends "${packages[@]}" ||
        { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${packages[@]}"; }
fi

cargo build -j "$jobs" --features editor --example editor_screenshot
exe=target/debug/examples/editor_screenshot

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LIBGL_ALWAYS_SOFTWARE=1
# Inside Xvfb: open the editor (it closes itself after 20 s), wait until it has drawn, then
# grab its window by name.
xvfb-run -a -s "-screen 0 1024x768x24" bash -c '
    set -euo pipefail
    "$1" 20 &
    pid=$!
    id=""
    for _ in $(seq 1 100); do
        id=$(xwininfo -root -tree | awk "/\"ImprovNet\"/ {print \$1; exit}")
        [ -n "$id" ] && break
        sleep 0.1
    done
    [ -n "$id" ] || { echo "the editor window did not appear" >&2; kill "$pid"; exit 1; }
    sleep 3   # a few frames: fonts uploaded, layout settled
    import -window "$id" "$2"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
' _ "$exe" "$tmp/editor.png"
# 8-bit RGB without metadata, so a rerun on the same machine gives the same file.
convert "$tmp/editor.png" -strip -depth 8 -type TrueColor "$out"
echo "wrote $out ($(identify -format '%wx%h' "$out"))"
