#!/bin/sh
# Certificate quickstart: a self-signed certificate for localhost, to try TLS termination
# (examples/https.toml). For real traffic use a certificate from your CA or ACME client.
#
#   sh examples/make-cert.sh            # writes examples/tls/localhost.pem and .key
#   sh examples/make-cert.sh DIR NAME   # writes DIR/NAME.pem and DIR/NAME.key
set -eu
dir=${1:-examples/tls}
name=${2:-localhost}
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$name" -addext "subjectAltName=DNS:$name,IP:127.0.0.1" \
    -keyout "$dir/$name.key" -out "$dir/$name.pem" 2>/dev/null
chmod 600 "$dir/$name.key"
echo "wrote $dir/$name.pem and $dir/$name.key"
