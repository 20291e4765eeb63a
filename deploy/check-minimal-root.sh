#!/usr/bin/env bash
# Proves that badger-relay runs with nothing but itself and the shared libraries `ldd`
# lists: no CA bundle, no /etc, no shell. That is what the runtime image of
# deploy/Dockerfile provides (and more), so the image works.
#
#   deploy/check-minimal-root.sh [BINARY]    (default target/release/badger-relay; needs root for chroot)
set -euo pipefail
bin=${1:-target/release/badger-relay}
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release first)" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# A container from this image has no system CA bundle, so no SSL_CERT_FILE naming one:
# the host's (if it sets one) would point at a file the empty root does not have.
unset SSL_CERT_FILE SSL_CERT_DIR

cp "$bin" "$root/badger-relay"
for lib in $(ldd "$bin" | grep -o '/[^ )]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
mkdir -p "$root/tmp"
echo "empty root: $(cd "$root" && find . -type f | sort | tr '\n' ' ')"

chroot "$root" /badger-relay --version

# A config with a TLS stream URL and https targets: parsing, validation and building
# the rustls client config (bundled roots) must not need anything from the filesystem.
cat > "$root/relay.toml" <<'TOML'
[source]
url = "wss://scrapebadger.com/v1/twitter/stream"
api_key = "k"
[outbox]
path = "/tmp/outbox"
[targets.slack]
type = "slack"
url = "https://hooks.slack.com/services/T/B/X"
[[routes]]
targets = ["slack"]
TOML
chroot "$root" /badger-relay check -c /relay.toml >/dev/null
chroot "$root" /badger-relay outbox -c /relay.toml stats >/dev/null
# `route` builds each target's HTTPS client (rustls, bundled roots).
routed=$(echo '{"tweet_id":"1","tweet_text":"hi"}' | chroot "$root" /badger-relay route -c /relay.toml)
grep -q '^--- slack' <<<"$routed"

# The whole pipeline (stream, outbox, delivery) for a few seconds, inside the empty root.
out=$(timeout -s INT 6 chroot "$root" /badger-relay demo 2>/dev/null || true)
for kind in "┌ Slack" "┌ Discord" "┌ HTTP POST"; do
  grep -q "$kind" <<<"$out" || { echo "demo in the empty root printed no '$kind' delivery" >&2; exit 1; }
done
echo "ok: badger-relay runs in an empty root with only: $(ldd "$bin" | grep -o '/[^ )]*' | xargs -n1 basename | tr '\n' ' ')"
