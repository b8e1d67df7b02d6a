#!/usr/bin/env python3
"""Verifies a Keyward access token the way an independent resource server would:
PyJWT 2.10.1 fetches /.well-known/jwks.json with PyJWKClient, picks the key by
`kid`, and checks the EdDSA signature, iss, aud and exp.

Prints one JSON object: {"valid", "header", "claims"|"error", "jwk_kid", "jwks_kids"}.
A missing or different PyJWT (or its crypto extra) is an error (non-zero exit), never a skip.

Usage: jwt_verify.py --base http://127.0.0.1:PORT --token <jwt>
"""

import argparse
import json
import sys

try:
    import jwt
    from jwt import PyJWKClient
    import cryptography  # noqa: F401  (PyJWT[crypto]: needed for EdDSA)
except ImportError as e:  # pragma: no cover - the point is to fail loudly
    sys.exit(f"jwt_verify.py needs PyJWT[crypto]==2.10.1 (pip install -r tests-python-requirements.txt): {e}")

PYJWT_VERSION = "2.10.1"
if jwt.__version__ != PYJWT_VERSION:
    sys.exit(f"jwt_verify.py needs PyJWT=={PYJWT_VERSION}, found {jwt.__version__}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the service URL: JWKS location, expected iss and aud")
    p.add_argument("--token", required=True)
    a = p.parse_args()

    client = PyJWKClient(a.base + "/.well-known/jwks.json", cache_keys=False, cache_jwk_set=False)
    out = {"header": jwt.get_unverified_header(a.token)}
    out["jwks_kids"] = [k.key_id for k in client.get_signing_keys()]
    try:
        key = client.get_signing_key_from_jwt(a.token)
        out["jwk_kid"] = key.key_id
        out["claims"] = jwt.decode(
            a.token,
            key,
            algorithms=["EdDSA"],
            audience=a.base,
            issuer=a.base,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
        out["valid"] = True
    except jwt.PyJWTError as e:
        out["valid"] = False
        out["error"] = type(e).__name__
        out["message"] = str(e)
    out["pyjwt_version"] = jwt.__version__
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
