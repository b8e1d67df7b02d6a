#!/usr/bin/env python3
"""An independent Hawk client for Keyward's end-to-end tests (tests/client_auth.rs).

mohawk 1.1.0 signs and verifies; urllib (stdlib) sends. Every subcommand prints
one JSON object on stdout. A missing or different mohawk is an error (non-zero
exit), never a skip: the Rust test that runs this script then fails.

Subcommands:
  request  sign a request with mohawk.Sender, send it (optionally several times),
           verify Server-Authorization with Sender.accept_response and check the
           tsm of a stale-timestamp challenge with mohawk.util.calculate_ts_mac
  sign     only print the Authorization header (for POST /v1/verify's hawk form)
  bewit    make a bewit with mohawk.bewit.get_bewit and send a request carrying it
"""

import argparse
import importlib.metadata
import json
import sys
import time
import urllib.error
import urllib.request

try:
    import mohawk
    from mohawk.base import EmptyValue, Resource
    from mohawk.bewit import get_bewit
    from mohawk.exc import HawkFail
    from mohawk.util import calculate_ts_mac, parse_authorization_header
except ImportError as e:  # pragma: no cover - the point is to fail loudly
    sys.exit(f"hawk_client.py needs mohawk==1.1.0 (pip install -r tests-python-requirements.txt): {e}")

MOHAWK_VERSION = "1.1.0"
if importlib.metadata.version("mohawk") != MOHAWK_VERSION:
    sys.exit(f"hawk_client.py needs mohawk=={MOHAWK_VERSION}, found {importlib.metadata.version('mohawk')}")


def credentials(a):
    return {"id": a.id, "key": a.key, "algorithm": a.alg}


def decode(raw):
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def send(url, method, headers, body):
    """Sends one request; returns (status, headers, body bytes) for any status."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def stale_challenge(www, creds):
    """Parses `Hawk ts, tsm, error` and checks tsm as a client must before trusting ts."""
    if not www or not www.startswith("Hawk ") or "tsm=" not in www:
        return None
    attrs = parse_authorization_header(www)
    expected = calculate_ts_mac(attrs["ts"], creds)
    if isinstance(expected, bytes):
        expected = expected.decode("ascii")
    return {
        "ts": int(attrs["ts"]),
        "tsm": attrs.get("tsm"),
        "error": attrs.get("error"),
        "tsm_valid": attrs.get("tsm") == expected,
        "local_now": int(time.time()),
    }


def make_sender(a, url, method):
    kw = {}
    if a.nonce is not None:
        kw["nonce"] = a.nonce
    if a.ext is not None:
        kw["ext"] = a.ext
    if a.ts is not None:
        kw["_timestamp"] = a.ts
    elif a.ts_offset:
        kw["_timestamp"] = int(time.time()) + a.ts_offset
    if a.no_hash:
        # HawkNet / ZTPKI style: no payload hash, even for a body.
        return mohawk.Sender(credentials(a), url, method, always_hash_content=False, **kw)
    return mohawk.Sender(
        credentials(a), url, method, content=a.body or "", content_type=a.content_type or "", **kw
    )


def cmd_request(a):
    creds = credentials(a)
    sender = make_sender(a, (a.sign_base or a.base) + a.path, a.method)
    body = a.send_body if a.send_body is not None else a.body
    content_type = a.send_content_type if a.send_content_type is not None else a.content_type
    headers = {"Authorization": sender.request_header}
    if content_type:
        headers["Content-Type"] = content_type
    data = body.encode("utf-8") if body is not None else None
    out = {"authorization": sender.request_header, "responses": []}
    for _ in range(a.repeat):
        status, resp_headers, raw = send(a.base + a.path, a.method.upper(), headers, data)
        one = {
            "status": status,
            "content_type": resp_headers.get("Content-Type"),
            "body": decode(raw),
            "www_authenticate": resp_headers.get("WWW-Authenticate"),
            "server_authorization": resp_headers.get("Server-Authorization"),
            "response_verified": None,
            "tampered_response_rejected": None,
            "stale": None,
        }
        sa = one["server_authorization"]
        if sa:
            resp_ct = resp_headers.get("Content-Type") or ""
            try:
                sender.accept_response(sa, content=raw, content_type=resp_ct)
                one["response_verified"] = True
            except HawkFail as e:
                one["response_verified"] = False
                one["response_error"] = f"{type(e).__name__}: {e}"
            try:
                sender.accept_response(sa, content=raw + b" ", content_type=resp_ct)
                one["tampered_response_rejected"] = False
            except HawkFail:
                one["tampered_response_rejected"] = True
        one["stale"] = stale_challenge(one["www_authenticate"], creds)
        out["responses"].append(one)
    return out


def cmd_sign(a):
    sender = make_sender(a, a.url, a.method)
    return {"authorization": sender.request_header}


def cmd_bewit(a):
    exp = int(time.time()) + a.ttl
    resource = Resource(
        url=a.base + a.path,
        method="GET",
        credentials=credentials(a),
        timestamp=exp,
        nonce="",
        ext=a.ext,
    )
    bewit = get_bewit(resource)
    if a.strip_padding:
        bewit = bewit.rstrip("=")
    sep = "&" if "?" in a.path else "?"
    url = f"{a.base}{a.path}{sep}bewit={bewit}"
    headers = {}
    if a.authorization:
        headers["Authorization"] = a.authorization
    data = None
    if a.body is not None:
        data = a.body.encode("utf-8")
        headers["Content-Type"] = a.content_type or "application/json"
    status, resp_headers, raw = send(url, a.http_method, headers, data)
    return {
        "bewit": bewit,
        "exp": exp,
        "status": status,
        "content_type": resp_headers.get("Content-Type"),
        "body": decode(raw),
        "www_authenticate": resp_headers.get("WWW-Authenticate"),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--id", required=True, help="key id")
        sp.add_argument("--key", required=True, help="key secret (the Hawk key, used as-is)")
        sp.add_argument("--alg", default="sha256", choices=["sha256", "sha1"])
        sp.add_argument("--ext")
        sp.add_argument("--body", help="request body (text)")
        sp.add_argument("--content-type")

    r = sub.add_parser("request")
    common(r)
    r.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    r.add_argument("--method", default="GET", help="as given to mohawk (may be lower case)")
    r.add_argument("--path", required=True)
    r.add_argument("--no-hash", action="store_true", help="sign without a payload hash")
    r.add_argument("--ts-offset", type=int, default=0, help="seconds added to the signed ts")
    r.add_argument("--ts", help="raw ts attribute to sign (overrides --ts-offset)")
    r.add_argument("--nonce")
    r.add_argument("--sign-base", help="sign for this scheme://host:port instead of --base")
    r.add_argument("--send-body", help="send this body instead of the signed one")
    r.add_argument("--send-content-type", help="send this Content-Type instead of the signed one")
    r.add_argument("--repeat", type=int, default=1, help="send the identical request this many times")

    s = sub.add_parser("sign")
    common(s)
    s.add_argument("--url", required=True)
    s.add_argument("--method", default="GET")
    s.add_argument("--no-hash", action="store_true")
    s.add_argument("--ts-offset", type=int, default=0)
    s.add_argument("--ts")
    s.add_argument("--nonce")

    b = sub.add_parser("bewit")
    common(b)
    b.add_argument("--base", required=True)
    b.add_argument("--path", required=True)
    b.add_argument("--ttl", type=int, default=60, help="seconds until exp (negative: already expired)")
    b.add_argument("--http-method", default="GET", help="method actually sent")
    b.add_argument("--strip-padding", action="store_true")
    b.add_argument("--authorization", help="also send this Authorization header")

    a = p.parse_args()
    out = {"request": cmd_request, "sign": cmd_sign, "bewit": cmd_bewit}[a.cmd](a)
    out["mohawk_version"] = importlib.metadata.version("mohawk")
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
