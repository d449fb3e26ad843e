#!/usr/bin/env python3
"""Regenerates the seed corpora (fuzz/corpus/<target>/) and the fixture
fuzz/seeds/jwks.json (the public key set the `jwt_verify` target trusts, built
from crates/gatehouse-testkit/keys/*.pub.pem). Deterministic except for
ECDSA/RSA-PSS signatures (random by nature). `canonical_route` seeds are
written by hand. Needs Python's `cryptography`.
Run from anywhere: python3 fuzz/seeds/gen.py
"""
import base64, hashlib, hmac, json, os, pathlib
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

FUZZ = pathlib.Path(__file__).resolve().parent.parent
KEYS = FUZZ.parent / "crates" / "gatehouse-testkit" / "keys"
# Must match the HS256 secret of fuzz_targets/jwt_verify.rs.
SECRET = b"gatehouse-fuzz-hs256-secret-0123456789"
EXP = 4102444800  # 2100-01-01
IAT = 1767225600  # 2026-01-01


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint(n):
    return b64u(n.to_bytes((n.bit_length() + 7) // 8 or 1, "big"))


def load(name, private=False):
    data = (KEYS / name).read_bytes()
    return (serialization.load_pem_private_key(data, None) if private
            else serialization.load_pem_public_key(data))


def jwk(pub, kid, alg=None):
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        k = {"kty": "RSA", "n": uint(n.n), "e": uint(n.e)}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[pub.curve.name]
        k = {"kty": "EC", "crv": crv, "x": b64u(n.x.to_bytes(size, "big")),
             "y": b64u(n.y.to_bytes(size, "big"))}
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        k = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
    k["kid"] = kid
    k["use"] = "sig"
    if alg:
        k["alg"] = alg
    return k


def sign(alg, key, msg):
    if alg.startswith("HS"):
        return hmac.new(key, msg, getattr(hashlib, "sha" + alg[2:])).digest()
    h = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}.get(alg[2:])
    if alg.startswith("RS"):
        return key.sign(msg, padding.PKCS1v15(), h)
    if alg.startswith("PS"):
        return key.sign(msg, padding.PSS(padding.MGF1(h), h.digest_size), h)
    if alg.startswith("ES"):
        r, s = utils.decode_dss_signature(key.sign(msg, ec.ECDSA(h)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return key.sign(msg)  # EdDSA


def token(alg, key, claims, header=None):
    h = {"alg": alg, "typ": "JWT"}
    h.update(header or {})
    msg = (b64u(json.dumps(h, separators=(",", ":")).encode()) + "." +
           b64u(json.dumps(claims, separators=(",", ":")).encode())).encode()
    return msg.decode() + "." + b64u(sign(alg, key, msg))


def write(target, name, data):
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def p521_seeds():
    """jwks_parse seeds for ES512: a P-521 key from a fixed scalar (no key file;
    the seeds only need its public half), broken variants, and its PEM."""
    scalar = int.from_bytes(hashlib.sha512(b"gatehouse-fuzz-p521").digest(), "big")
    pub = ec.derive_private_key(scalar, ec.SECP521R1()).public_key()
    good = jwk(pub, "p521-1", "ES512")
    write("jwks_parse", "one-p521-1.json", json.dumps({"keys": [good]}))
    y = base64.urlsafe_b64decode(good["y"] + "==")
    off = y[:-1] + bytes([y[-1] ^ 1])
    write("jwks_parse", "p521-broken.json", json.dumps({"keys": [
        dict(good, kid="off-curve", y=b64u(off)), dict(good, kid="short", y=b64u(y[1:])),
        dict(good, kid="long", y=b64u(y + b"\0")), dict(good, kid="es256", alg="ES256"),
        dict(good, kid="bad-b64", x="!!"), good]}))
    write("jwks_parse", "pem-p521.pem", pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def main():
    rsa1, ec1, ed1, ec384 = (load("rsa-1.pem", True), load("ec256-1.pem", True),
                             load("ed25519-1.pem", True), load("ec384-1.pem", True))
    keys = [jwk(rsa1.public_key(), "rsa-1"), jwk(ec1.public_key(), "ec-1", "ES256"),
            jwk(ed1.public_key(), "ed-1"), jwk(ec384.public_key(), "ec384-1")]
    (FUZZ / "seeds" / "jwks.json").write_text(json.dumps({"keys": keys}, indent=1) + "\n")

    # jwks_parse: the real set, one-key sets, odd members, a PEM (the target
    # sends input starting with "-----BEGIN" to the PEM parser).
    write("jwks_parse", "set.json", json.dumps({"keys": keys}))
    for k in keys:
        write("jwks_parse", f"one-{k['kid']}.json", json.dumps({"keys": [k]}))
    write("jwks_parse", "hmac.json", json.dumps(
        {"keys": [{"kty": "oct", "k": b64u(SECRET), "kid": "h", "alg": "HS256"}]}))
    write("jwks_parse", "enc-and-badalg.json", json.dumps({"keys": [
        dict(keys[0], use="enc"), dict(keys[1], alg="RS256"), dict(keys[0], alg="none"),
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}, {"kty": "OKP", "crv": "X25519", "x": "AA"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"}, {"kty": "zzz"}, 7, None]}))
    write("jwks_parse", "empty.json", '{"keys":[]}')
    write("jwks_parse", "pem-rsa.pem", (KEYS / "rsa-1.pub.pem").read_bytes())
    write("jwks_parse", "pem-ec.pem", (KEYS / "ec256-1.pub.pem").read_bytes())
    write("jwks_parse", "pem-ed.pem", (KEYS / "ed25519-1.pub.pem").read_bytes())
    p521_seeds()

    # jwt_verify: byte 0 picks the mode (see the target), the rest is the input.
    base = {"sub": "user-1", "iss": "https://idp.fuzz", "aud": "api", "exp": EXP,
            "iat": IAT, "tenant": "t1", "roles": ["admin", "reader"], "scope": "orders:read orders:write",
            "org": {"region": "eu", "tier": "GOLD"}, "email": "a@example.com"}
    seeds = {
        "raw-hs256-valid": (0, token("HS256", SECRET, base)),
        "raw-hs256-noexp": (0, token("HS256", SECRET, {k: v for k, v in base.items() if k != "exp"})),
        "raw-hs256-policy-denied": (0, token("HS256", SECRET, dict(base, roles=["guest"], scope="x"))),
        "raw-hs256-expired": (0, token("HS256", SECRET, dict(base, exp=IAT + 60))),
        "raw-hs256-kid": (0, token("HS256", SECRET, base, {"kid": "k1"})),
        "raw-alg-none": (0, b64u(b'{"alg":"none"}') + "." + b64u(json.dumps(base).encode()) + "."),
        "raw-rs256-valid": (1, token("RS256", rsa1, base, {"kid": "rsa-1"})),
        "raw-ps256-valid": (1, token("PS256", rsa1, base, {"kid": "rsa-1"})),
        "raw-es256-valid": (1, token("ES256", ec1, base, {"kid": "ec-1"})),
        "raw-eddsa-valid": (1, token("EdDSA", ed1, base, {"kid": "ed-1"})),
        "raw-es384-nokid": (1, token("ES384", ec384, base)),
        "raw-rs256-unknown-kid": (1, token("RS256", rsa1, base, {"kid": "nope"})),
    }
    hdr = json.dumps({"alg": "HS256", "typ": "JWT"})
    eshdr = json.dumps({"alg": "ES256", "kid": "ec-1"})
    signed = {
        "signed-hs256-valid": (2, hdr, base),
        "signed-hs256-float-times": (2, hdr, dict(base, exp=4102444800.5, nbf=1.5, iat=1767225600.25)),
        "signed-hs256-huge-exp": (2, hdr, dict(base, exp=1e20)),
        "signed-hs256-aud-array": (2, hdr, dict(base, aud=["x", "api"])),
        "signed-hs256-crlf-claim": (2, hdr, dict(base, sub="a\r\nX-Admin: 1")),
        "signed-hs256-nested": (2, hdr, dict(base, org={"region": ["eu", 1, True], "tier": "gold"})),
        "signed-es256-valid": (3, eshdr, base),
        "signed-es256-iat-after-exp": (3, eshdr, dict(base, iat=EXP + 1)),
    }
    for name, (mode, tok) in seeds.items():
        write("jwt_verify", name, bytes([mode]) + tok.encode())
    for name, (mode, h, c) in signed.items():
        write("jwt_verify", name, bytes([mode]) + h.encode() + b"\n" + json.dumps(c).encode())

    other_seeds(keys)


def other_seeds(keys):
    # inject_render: claim documents.
    docs = {
        "claims": {"sub": "user-1", "a.b": "dotted", "tenant": "t1", "roles": ["admin", "reader"],
                   "org": {"region": "eu", "tier": "GOLD"}, "list": [1, "two", 3.5, True],
                   "users": [{"id": "u1", "admin": False, "name": "A"}, {"id": "u2", "admin": True, "name": "B"}],
                   "x-y": {"z w": "quoted"}, "scope": "orders:read orders:write", "email": "a@example.com"},
        "crlf": {"sub": "a\r\nX-Admin: 1", "tenant": "t", "org": {"region": "eu\u0000"}},
        "unicode": {"sub": "Claes Rosenl\u00f6f", "tenant": "\u212a", "org": {"tier": "\u212aelvin"},
                    "roles": "admin,writer"},
        "nested-mixed": {"tenant": {"deep": [[1, {"name": None}], {"banned": True}]}, "roles": [{"r": 1}, "x"],
                         "groups": ["ops", "dev"], "sub": None},
        "numbers": {"sub": 1e300, "tenant": -0.0, "list": [0, 18446744073709551615, -9223372036854775808, 1.5e-10]},
        "missing-required": {"sub": "x"},
        "not-object": ["admin", {"tenant": "t"}],
    }
    for name, d in docs.items():
        write("inject_render", name + ".json", json.dumps(d))
    write("inject_render", "scalar.json", '"tenant"')

    # token_intake: line 0 query, line 1 Authorization, line 2 X-Token, 3.. Cookie.
    tok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    intake = {
        "bearer": f"\nBearer {tok}\n",
        "bearer-two-tokens": f"\nBearer a b\n",
        "basic": "\nBasic dXNlcjpwYXNz\n",
        "token-scheme": f"\nToken {tok}\n",
        "x-token": f"\n\n{tok}\n",
        "cookie": f"\n\n\nsid=1; at={tok}; theme=dark\n",
        "cookie-dup": f"\n\n\nat={tok}; at=forged\nat=second; session=s\n",
        "cookie-quoted": f'\n\n\nat="{tok}"; session="s s"\n',
        "query": f"x=1&access_token={tok}&y\n",
        "query-encoded-name": f"access%5Ftoken={tok}&access_token=\n",
        "query-dup": f"access_token=a&access_token=b\n",
        "all-carriers": f"access_token=q.q.q\nBearer h.h.h\nx.x.x\nat=c.c.c; session=s.s.s\n",
        "empty-values": "access_token=\nBearer \n \nat=; =x; ;;\n",
    }
    for name, text in intake.items():
        write("token_intake", name, text)

    # config_load: the example configs, and configs whose connectors build offline.
    for f in sorted((FUZZ.parent / "configs").glob("*.toml")):
        write("config_load", f.name, f.read_bytes())
    jwks = json.dumps({"keys": keys[:2]})
    write("config_load", "inline-jwks.toml", f"""[server]
listen = ["127.0.0.1:8080"]
[upstreams.app]
peers = ["127.0.0.1:9000"]
[connectors.pk]
kind = "jwt"
jwks = '{jwks}'
algorithms = ["RS256", "ES256"]
issuers = ["https://idp.fuzz"]
audiences = ["api"]
leeway = "30s"
max_token_age = "1h"
required_claims = ["sub"]
token_sources = [{{ header = "X-Token" }}, {{ cookie = "at" }}, {{ query = "access_token" }}]
[connectors.pk.inject_headers]
"X-User-Id" = "sub"
"X-Region" = {{ claim = "$.org.region", required = true }}
[[connectors.pk.policy]]
any = [{{ claim = "roles", op = "contains_any", values = ["admin"] }}]
[[routes]]
name = "api"
path_prefix = "/api"
methods = ["GET", "POST"]
host = "*.example.com"
upstream = "app"
connectors = ["pk"]
[[routes]]
name = "public"
upstream = "app"
""")
    write("config_load", "secret-and-userinfo.toml", f"""[server]
listen = ["127.0.0.1:8080", "127.0.0.1:8081"]
admin_listen = "127.0.0.1:9091"
threads = 2
grace_period = "5s"
[upstreams.app]
peers = ["127.0.0.1:9000", "[::1]:9001"]
connect_timeout = "250ms"
[connectors.hs]
kind = "jwt"
secret = "{SECRET.decode()}"
algorithms = ["HS256"]
error_style = "mashery"
forward_authorization = false
forward_claims_header = "X-Claims"
[connectors.ui]
kind = "oidc_userinfo"
method = "POST"
region_header = "X-Region"
default_endpoint = "http://127.0.0.1:1/userinfo"
cache_ttl = "5m"
[connectors.ui.endpoints]
FR = "http://127.0.0.1:2/userinfo"
[connectors.ui.inject_headers]
"X-User-Email" = "$.email"
[[routes]]
name = "chain"
path_prefix = "/chain"
upstream = "app"
connectors = ["hs", {{ any = ["ui", "hs"] }}]
""")


if __name__ == "__main__":
    main()
