#!/usr/bin/env bash
# Issues the certificates of the OpenFlow channel's TLS (docs/security.md), with openssl.
# Two CAs, as ovs-pki does: one signs the switches (evb-nms checks them: --of-tls-ca-certs),
# the other signs the controller (the switches check it: ovs-vsctl set-ssl ... CACERT).
#
#   scripts/of-pki.sh init DIR                DIR/switchca/, DIR/controllerca/ (cacert.pem, privkey.pem)
#   scripts/of-pki.sh controller DIR [CN]     DIR/controller-privkey.pem, DIR/controller-cert.pem
#   scripts/of-pki.sh switch DIR NAME         DIR/NAME-privkey.pem, DIR/NAME-cert.pem
#
# Then:
#   evb-nms --of-listen-host ADDR --of-tls-privkey DIR/controller-privkey.pem \
#     --of-tls-cert DIR/controller-cert.pem --of-tls-ca-certs DIR/switchca/cacert.pem
#   ovs-vsctl set-ssl DIR/NAME-privkey.pem DIR/NAME-cert.pem DIR/controllerca/cacert.pem
#   ovs-vsctl set-controller BRIDGE ssl:ADDR:6653
# Copy only NAME-privkey.pem, NAME-cert.pem and controllerca/cacert.pem to a switch; the CAs'
# private keys stay where they were made. Keys are EC P-256; certificates last OF_PKI_DAYS days
# (default 825).
set -euo pipefail
DAYS=${OF_PKI_DAYS:-825}
umask 077

usage() {
  sed -n '2,8p' "$0" >&2
  exit 2
}

new_ca() { # DIR SUBJECT
  mkdir -p "$1"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$1/privkey.pem" -out "$1/cacert.pem" -days "$DAYS" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 644 "$1/cacert.pem"
}

issue() { # CA_DIR OUT_PREFIX CN EXTENDED_KEY_USAGE
  local ca=$1 out=$2 csr
  [ -f "$ca/privkey.pem" ] || { echo "of-pki: no CA in $ca (run: $0 init DIR)" >&2; exit 1; }
  csr=$(mktemp)
  trap 'rm -f "$csr"' RETURN
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$out-privkey.pem" -out "$csr" -subj "/CN=$3" 2>/dev/null
  openssl x509 -req -in "$csr" -CA "$ca/cacert.pem" -CAkey "$ca/privkey.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -out "$out-cert.pem" \
    -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' "$4") \
    2>/dev/null
  chmod 644 "$out-cert.pem"
  echo "$out-privkey.pem $out-cert.pem"
}

[ $# -ge 2 ] || usage
command=$1 dir=$2
case "$command" in
  init)
    [ ! -e "$dir/switchca" ] && [ ! -e "$dir/controllerca" ] ||
      { echo "of-pki: $dir already has CAs" >&2; exit 1; }
    new_ca "$dir/switchca" "evb-nms switch CA"
    new_ca "$dir/controllerca" "evb-nms controller CA"
    echo "$dir/switchca/cacert.pem $dir/controllerca/cacert.pem"
    ;;
  controller)
    issue "$dir/controllerca" "$dir/controller" "${3:-evb-nms}" serverAuth
    ;;
  switch)
    [ $# -eq 3 ] || usage
    [[ $3 =~ ^[A-Za-z0-9._-]+$ ]] || { echo "of-pki: NAME: letters, digits, . _ - only" >&2; exit 2; }
    issue "$dir/switchca" "$dir/$3" "$3" clientAuth
    ;;
  *) usage ;;
esac
