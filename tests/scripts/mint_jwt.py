#!/usr/bin/env python3
"""Mints JSON Web Tokens with PyJWT and keys made by `cryptography`: a second, independent
implementation beside the Rust tests' own, so the gateway is checked against tokens no
code of ours produced.

Reads a JSON object on stdin: {"kid_prefix": "py", "claims": {...}} and writes a JSON object:
{"jwks": {"keys": [...]}, "tokens": {"RS256": "...", "PS256": "...", "ES384": "..."}},
one fresh key per algorithm, each token signed with its key and naming its `kid`.
"""

import json
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


def main() -> None:
    request = json.load(sys.stdin)
    prefix = request.get("kid_prefix", "py")
    claims = request["claims"]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    keys = []
    tokens = {}
    for alg, private, family in (
        ("RS256", rsa_key, RSAAlgorithm),
        ("PS256", rsa_key, RSAAlgorithm),
        ("ES384", ec_key, ECAlgorithm),
    ):
        kid = f"{prefix}-{alg.lower()}"
        jwk = json.loads(family.to_jwk(private.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": alg})
        keys.append(jwk)
        tokens[alg] = jwt.encode(claims, private, algorithm=alg, headers={"kid": kid})
    json.dump({"jwks": {"keys": keys}, "tokens": tokens}, sys.stdout)


if __name__ == "__main__":
    main()
