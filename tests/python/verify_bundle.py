#!/usr/bin/env python3
"""An independent verifier of xinlian proof bundles, sharing no code with the Rust one.

It re-derives the canonical (postcard) encodings of headers, precommits and validator
sets by hand, hashes them with hashlib, and checks every ed25519 signature with
`cryptography` (OpenSSL): the validators' precommits against the genesis file's node
keys, the record's signature against the signer key inside the record, and the
record's RFC 9162 inclusion path to the certified ledger root.

Usage: verify_bundle.py GENESIS.toml BUNDLE.json   (exit 0: verified, 1: not)
"""

import hashlib
import json
import sys
import tomllib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


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
        h(hd["state_hash"]), h(hd["trace_root"]), h(hd["validators_hash"]), h(hd["next_roster_hash"]),
    ])


def validator_set_hash(validators: list) -> bytes:
    enc = varint(len(validators))
    for v in validators:
        name = v["member"].encode()
        enc += varint(len(name)) + name + v["key"] + varint(v["power"])
    return tagged("xinlian/validator-set/v1", enc)


def verify(pk: bytes, sig: bytes, msg: bytes, what: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
    except InvalidSignature:
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


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
