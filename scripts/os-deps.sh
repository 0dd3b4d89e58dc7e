#!/usr/bin/env bash
# The operating-system programs the tests drive, installed with apt-get when missing.
# Run by `make test` and by .ci/run; it does nothing when everything is there.
set -euo pipefail

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)         # integration tests drive curl
command -v dig >/dev/null 2>&1 || need+=(dnsutils)      # the UDP tests drive dig
command -v chromium >/dev/null 2>&1 || need+=(chromium) # the dashboard test drives a headless browser
command -v redis-server >/dev/null 2>&1 || need+=(redis-server) # the session store tests run a real one
command -v keepalived >/dev/null 2>&1 || need+=(keepalived)     # the floating-address test runs two
command -v ip >/dev/null 2>&1 || need+=(iproute2)                # ... in network namespaces
command -v make >/dev/null 2>&1 || need+=(make)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "os-deps: please install these packages (apt-get, as root): ${need[*]}" >&2
    exit 1
fi
echo "os-deps: installing ${need[*]}" >&2
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${need[@]}"
