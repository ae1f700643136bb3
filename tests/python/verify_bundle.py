#!/usr/bin/env python3
"""An independent verifier of xinlian proof bundles, sharing no code with the Rust one.

It re-derives the canonical (postcard) encodings of headers, precommits and validator
sets by hand, hashes them with hashlib, and checks every ed25519 signature by the
ledger's rule, ZIP-215, implemented here in plain Python (no OpenSSL: its stricter rule
refuses some signatures the ledger accepts): the validators' precommits against the
genesis file's node keys, the record's signature against the signer key inside the
record, and the record's RFC 9162 inclusion path to the certified ledger root.

Usage: verify_bundle.py GENESIS.toml BUNDLE.json   (exit 0: verified, 1: not)
       verify_bundle.py --signature-vectors CASES.json
           prints the indices of the ed25519-speccheck cases this rule accepts
"""

import hashlib
import json
import sys
import tomllib

# Ed25519 by ZIP-215 (https://zips.z.cash/zip-0215), the rule of
# client/src/crypto.rs: A and R are any encodings of curve points, canonical or not
# (y may be >= p; x = 0 with the sign bit set is accepted); S must be below L; and the
# cofactored equation [8][S]B = [8]R + [8][k]A must hold, with
# k = SHA-512(R || A || M) over the encodings as given.
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)


def point_add(a: tuple, b: tuple) -> tuple:
    """Extended twisted Edwards coordinates (RFC 8032 5.1.4): complete for every pair."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * D * t1 * t2 % P
    dd = 2 * z1 * z2 % P
    e, f, g, hh = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * hh % P, f * g % P, e * hh % P)


def point_mul(n: int, pt: tuple) -> tuple:
    out = IDENTITY
    while n:
        if n & 1:
            out = point_add(out, pt)
        pt = point_add(pt, pt)
        n >>= 1
    return out


def point_eq(a: tuple, b: tuple) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def decode_point(enc: bytes):
    """Any 32-byte encoding of a curve point, canonical or not; None if none."""
    if len(enc) != 32:
        return None
    n = int.from_bytes(enc, "little")
    sign, y = n >> 255, (n & ((1 << 255) - 1)) % P
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P != 0:
        x = x * SQRT_M1 % P
        if (v * x * x - u) % P != 0:
            return None
    if x & 1 != sign:
        x = (P - x) % P  # for x = 0 this stays 0: the sign bit is ignored, as ZIP-215 says
    return (x, y, 1, x * y % P)


BASE = decode_point((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def zip215_verify(pk: bytes, sig: bytes, msg: bytes) -> bool:
    if len(sig) != 64:
        return False
    a, r = decode_point(pk), decode_point(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if a is None or r is None or s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pk + msg).digest(), "little") % L
    left = point_mul(8, point_mul(s, BASE))
    right = point_mul(8, point_add(r, point_mul(k, a)))
    return point_eq(left, right)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def h(hexstr: str) -> bytes:
    b = bytes.fromhex(hexstr)
    assert len(b) == 32, hexstr
    return b


def tagged(tag: str, encoding: bytes) -> bytes:
    return hashlib.sha256(tag.encode() + b"\0" + encoding).digest()


def header_encoding(hd: dict) -> bytes:
    return b"".join([
        h(hd["chain"]), varint(hd["height"]), h(hd["parent"]),
        varint(zigzag(hd["time_ms"])), h(hd["proposer"]), h(hd["records_root"]),
        varint(hd["records_count"]), h(hd["ledger_root"]), varint(hd["ledger_size"]),
        h(hd["state_hash"]), h(hd["trace_root"]), h(hd["credit_root"]), h(hd["validators_hash"]), h(hd["next_roster_hash"]),
    ])


def validator_set_hash(validators: list) -> bytes:
    enc = varint(len(validators))
    for v in validators:
        name = v["member"].encode()
        enc += varint(len(name)) + name + v["key"] + varint(v["power"])
    return tagged("xinlian/validator-set/v1", enc)


def verify(pk: bytes, sig: bytes, msg: bytes, what: str) -> None:
    if not zip215_verify(pk, sig, msg):
        raise SystemExit(f"not verified: {what}: bad signature")


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(leaf: bytes, index: int, size: int, path: list) -> bytes:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        raise SystemExit("not verified: leaf index beyond tree size")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise SystemExit("not verified: inclusion path too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise SystemExit("not verified: inclusion path too short")
    return r


def main(genesis_path: str, bundle_path: str) -> None:
    with open(genesis_path, "rb") as f:
        genesis = tomllib.load(f)
    with open(bundle_path) as f:
        bundle = json.load(f)
    if bundle["format"] != "xinlian-proof/v1" or bundle["roster_changes"]:
        raise SystemExit("not verified: this checker follows no roster changes")
    validators = [
        {"member": m["id"], "key": h(m["node_key"]), "power": m["voting_power"]}
        for m in genesis["members"] if "validator" in m["roles"]
    ]
    proof = bundle["proof"]
    hd, cert = proof["checkpoint"]["header"], proof["checkpoint"]["certificate"]
    if h(hd["chain"]) != h(bundle["chain"]):
        raise SystemExit("not verified: header of another chain")
    if h(hd["validators_hash"]) != validator_set_hash(validators):
        raise SystemExit("not verified: header names another validator set")
    block = tagged("xinlian/header/v1", header_encoding(hd))
    if h(cert["block"]) != block or cert["height"] != hd["height"]:
        raise SystemExit("not verified: certificate is for another header")
    signed, last = 0, -1
    for s in cert["signatures"]:
        i = s["validator"]
        if i <= last or i >= len(validators):
            raise SystemExit("not verified: bad validator index")
        last = i
        v = validators[i]
        precommit = (h(hd["chain"]) + varint(hd["height"]) + varint(cert["round"])
                     + block + v["key"])
        verify(v["key"], bytes.fromhex(s["signature"]),
               b"xinlian/precommit/v1\0" + precommit, f"precommit of {v['member']}")
        signed += v["power"]
    if signed * 3 <= 2 * sum(v["power"] for v in validators):
        raise SystemExit("not verified: no two-thirds quorum")

    record = bytes.fromhex(proof["entry"]["record"])
    envelope, signature = record[:-64], record[-64:]
    if envelope[:32] != h(bundle["chain"]):
        raise SystemExit("not verified: record of another chain")
    signer = envelope[32:64]
    verify(signer, signature, b"xinlian/record/v1\0" + envelope, "record")
    leaf = hashlib.sha256(b"\x00" + record).digest()
    path = [h(x) for x in proof["entry"]["inclusion"]]
    root = root_from_inclusion(leaf, proof["entry"]["index"], hd["ledger_size"], path)
    if root != h(hd["ledger_root"]):
        raise SystemExit("not verified: inclusion path does not reach the ledger root")
    print(json.dumps({
        "verified": True,
        "record_id": hashlib.sha256(envelope).hexdigest(),
        "signer": signer.hex(),
        "height": hd["height"],
        "signed_power": signed,
    }))


def signature_vectors(path: str) -> None:
    """The indices of the cases (ed25519-speccheck's cases.json) this rule accepts."""
    with open(path) as f:
        cases = json.load(f)
    print(json.dumps([
        i for i, c in enumerate(cases)
        if zip215_verify(bytes.fromhex(c["pub_key"]), bytes.fromhex(c["signature"]),
                         bytes.fromhex(c["message"]))
    ]))


if __name__ == "__main__":
    if sys.argv[1] == "--signature-vectors":
        signature_vectors(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2])
