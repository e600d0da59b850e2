#!/usr/bin/python3
"""A registry token service for the tests (distribution's token
authentication): Basic credentials in, an ES256 JWT out, granting the
scopes asked for. Usage: token-server.py KEY.pem CERT.pem ISSUER SERVICE
USER PASSWORD PORT_FILE. Needs python3-cryptography."""
import base64
import http.server
import json
import sys
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

key_file, cert_file, issuer, service, user, password, port_file = sys.argv[1:8]
with open(key_file, "rb") as f:
    key = serialization.load_pem_private_key(f.read(), None)
with open(cert_file, "rb") as f:
    cert = x509.load_pem_x509_certificate(f.read())
chain = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if self.headers.get("Authorization", "") != expected:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if query.get("service", [""])[0] != service:
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        access = []
        for scope in query.get("scope", []):
            for one in scope.split(" "):
                kind, name, actions = one.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": chain}
        claims = {"iss": issuer, "sub": user, "aud": service, "exp": now + 600,
                  "nbf": now - 60, "iat": now, "jti": f"{now}-{self.path}", "access": access}
        signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        r, s = utils.decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
        token = signing + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        body = json.dumps({"token": token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
