#!/usr/bin/env bash
# A small PKI for one coop broker: a coop CA, the broker's server certificate, and one client
# certificate per store (CN = store id) and for the hub (CN = _hub). With the broker's
# `use_identity_as_username true`, the CN is the MQTT username that deploy/mosquitto/coop.acl sees.
#
#   make-pki.sh DIR ca                        the coop CA (DIR/ca.crt, DIR/ca.key); never overwritten
#   make-pki.sh DIR server HOST [HOST...]     DIR/server.{crt,key}; SANs: localhost, 127.0.0.1, ::1, HOSTs
#   make-pki.sh DIR client NAME [NAME...]     DIR/NAME.{crt,key} for each store id (and `_hub`)
#
# Keys are EC P-256, written mode 0600. Re-running `server` or `client` issues a fresh certificate
# and key (that is how you rotate one: see docs/operations.md). Keep ca.key off the broker and off
# the shops' boxes: only the machine that issues certificates needs it.
set -euo pipefail
umask 077

DAYS_CA=${DAYS_CA:-3650}
DAYS_LEAF=${DAYS_LEAF:-825}

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
dir=$1; action=$2; shift 2
mkdir -p "$dir"
command -v openssl >/dev/null || { echo "make-pki: openssl is missing (apt-get install openssl)" >&2; exit 1; }

need_ca() {
    [ -s "$dir/ca.crt" ] && [ -s "$dir/ca.key" ] || { echo "make-pki: no CA in $dir; run: $0 $dir ca" >&2; exit 1; }
}

# Sign a CSR with the CA. $1 = name (file stem), $2 = extensions text.
sign() {
    local name=$1 ext=$2 extfile
    extfile=$(mktemp)
    printf '%s\n' "$ext" >"$extfile"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -CAserial "$dir/ca.srl" -days "$DAYS_LEAF" -sha256 -extfile "$extfile" -out "$dir/$name.crt" 2>/dev/null
    rm -f "$extfile" "$dir/$name.csr"
    chmod 0644 "$dir/$name.crt"
}

new_key_and_csr() {  # $1 = file stem, $2 = CN
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/$1.key" -subj "/O=shopkeeper coop/CN=$2" -out "$dir/$1.csr" 2>/dev/null
    chmod 0600 "$dir/$1.key"
}

case $action in
ca)
    if [ -e "$dir/ca.key" ]; then
        echo "make-pki: $dir/ca.key exists; keeping it (delete it yourself to start a new CA)" >&2
        exit 0
    fi
    cn=${1:-shopkeeper coop CA}
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$DAYS_CA" -sha256 \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj "/O=shopkeeper coop/CN=$cn" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 0600 "$dir/ca.key"; chmod 0644 "$dir/ca.crt"
    echo "make-pki: CA in $dir/ca.crt"
    ;;
server)
    need_ca
    [ $# -ge 1 ] || usage
    sans="DNS:localhost,IP:127.0.0.1,IP:::1"
    for host in "$@"; do
        if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then sans+=",IP:$host"; else sans+=",DNS:$host"; fi
    done
    new_key_and_csr server "$1"
    sign server "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$sans"
    echo "make-pki: broker certificate $dir/server.crt for $sans"
    ;;
client)
    need_ca
    [ $# -ge 1 ] || usage
    for name in "$@"; do
        # The CN becomes an MQTT username and an ACL topic level: no '/', '+', '#' or spaces.
        if ! [[ $name =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$ ]]; then
            echo "make-pki: '$name' is not a valid store id (letters, digits, '-', '_')" >&2; exit 2
        fi
        new_key_and_csr "$name" "$name"
        sign "$name" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
        echo "make-pki: client certificate $dir/$name.crt (CN=$name)"
    done
    ;;
*) usage ;;
esac
