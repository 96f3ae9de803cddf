#!/bin/sh
# A certificate for this container's address (and name), signed by the
# image's CA, then Pebble. The CA's key stays in the image (test bed only).
set -eu
cd /etc/pebble
ip=$(hostname -i | cut -d' ' -f1)
openssl req -newkey rsa:2048 -nodes -subj "/CN=armstack-pebble" -keyout key.pem -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:armstack-pebble,DNS:localhost,IP:%s\n' "$ip" > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile san.ext -out cert.pem 2>/dev/null
exec /usr/bin/pebble -config /etc/pebble/pebble-config.json -strict=false
