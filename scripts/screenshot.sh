#!/usr/bin/env bash
# Screenshots an HTML report with headless Chromium and checks that it stands alone:
#   scripts/screenshot.sh REPORT.html OUT.png [WIDTH,HEIGHT]     (default 1280,800)
# Fails (exit 1) when the HTML references anything outside itself, when Chromium logs a
# console error or a failed load, or when the page does not load; exit 2 on bad usage or
# when Chromium is missing (Debian: apt-get install -y chromium).
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
html=$1
out=$2
size=${3:-1280,800}
[[ -f $html ]] || { echo "error: $html: no such file" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z $browser ]]; then
    echo "error: chromium not found (Debian: apt-get install -y chromium)" >&2
    exit 2
fi

# 1. Static: no tag attribute or stylesheet may load anything but a data: URL or a
#    #fragment. URLs in escaped text (failure examples, variables) are fine.
external() {
    local found=1
    grep -Pin "<[a-zA-Z][^>]*\s(src|href|srcset|poster|action|data|xlink:href)\s*=\s*[\"']?+(?!\s*(#|data:))" "$html" && found=0
    grep -Pin "<[a-zA-Z][^>]*\sstyle\s*=\s*\"[^\"]*url\(\s*[\"']?+(?!\s*(#|data:))" "$html" && found=0
    sed -n '/<style[ >]/I,/<\/style>/Ip' "$html" | grep -Pin "url\(\s*[\"']?+(?!\s*(#|data:))|@import" && found=0
    return $found
}
if external; then
    echo "error: $html references resources outside itself (lines above)" >&2
    exit 1
fi

profile=$(mktemp -d)
log=$profile.log
netlog=$profile.netlog.json
trap 'rm -rf "$profile" "$log" "$netlog"' EXIT
url="file://$(cd "$(dirname "$html")" && pwd)/$(basename "$html")"
# Every host name resolves to nothing, so nothing the page asks for leaves the machine;
# the network log below still shows that it asked.
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --disable-extensions --hide-scrollbars --force-device-scale-factor=1
    "--host-resolver-rules=MAP * ~NOTFOUND" --enable-logging=stderr --v=0
    "--user-data-dir=$profile" "--window-size=$size")

# 2. The page loads: the DOM comes back whole.
dom=$(timeout 60 "$browser" "${flags[@]}" --dump-dom "$url" 2>>"$log") || {
    cat "$log" >&2
    echo "error: chromium could not load $html" >&2
    exit 1
}
if [[ $dom != *"</html>"* ]]; then
    echo "error: chromium returned no document for $html" >&2
    exit 1
fi

# 3. The screenshot.
rm -f "$out"
timeout 60 "$browser" "${flags[@]}" "--log-net-log=$netlog" "--screenshot=$out" "$url" 2>>"$log" >/dev/null || true
if [[ ! -s $out ]]; then
    cat "$log" >&2
    echo "error: chromium wrote no screenshot to $out" >&2
    exit 1
fi

if [[ ! -s $netlog ]]; then
    echo "error: chromium wrote no network log" >&2
    exit 1
fi
# 4. No network requests from the page: Chromium's own background requests have no
#    initiator ("not an origin"); anything the file asked for has its origin ("null").
if grep '"initiator":' "$netlog" | grep -v '"initiator":"not an origin"' | grep -o '"url":"[^"]*"' >&2; then
    echo "error: $html made network requests (URLs above)" >&2
    exit 1
fi

# 5. No console output at all (the report has no scripts), so no errors or exceptions.
if grep -E ":CONSOLE[:(]|Uncaught" "$log" >&2; then
    echo "error: $html logged to the console (lines above)" >&2
    exit 1
fi
echo "screenshot of $html written to $out ($size)"
