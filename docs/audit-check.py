#!/usr/bin/env python3
"""Checks a certbound audit-log inclusion proof, trusting nothing but the log's verifier key.

    python3 docs/audit-check.py PROOF.json VERIFIER_KEY_FILE [CERTIFICATE.pem]

PROOF.json is what `certbound audit prove SERIAL` prints (or one line of `audit export` with
the export's first line's "checkpoint"); VERIFIER_KEY_FILE holds the key from
GET /v1/audit/key, kept since. Python 3's standard library and the `openssl` command only.
See docs/audit-log.md for each step.
"""
import base64
import hashlib
import json
import os
import ssl
import subprocess
import sys
import tempfile


def sha256(*parts):
    return hashlib.sha256(b"".join(parts)).digest()


def fail(why):
    sys.exit(f"audit-check: {why}")


def ed25519_verify(public_key, message, signature):
    """Ed25519 (RFC 8032) by openssl; the SPKI of a raw key is a fixed prefix + the 32 bytes."""
    spki = bytes.fromhex("302a300506032b6570032100") + public_key
    pem = "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(spki).decode() + "\n-----END PUBLIC KEY-----\n"
    with tempfile.TemporaryDirectory() as d:
        files = {"key.pem": pem.encode(), "msg": message, "sig": signature}
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        run = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "key.pem", "-rawin",
             "-in", "msg", "-sigfile", "sig"], cwd=d, capture_output=True)
        return run.returncode == 0


def open_note(note, vkey):
    """c2sp.org/signed-note: the text, if a signature line of this key verifies over it."""
    name, key_id, material = vkey.strip().split("+", 2)
    raw = base64.b64decode(material)
    if len(raw) != 33 or raw[0] != 1:
        fail("not an Ed25519 verifier key")
    key = raw[1:]
    if sha256(name.encode(), b"\n\x01", key)[:4].hex() != key_id:
        fail("the verifier key's ID does not match its key")
    text, _, signatures = note.rpartition("\n\n")  # the last blank line ends the text
    text += "\n"
    for line in signatures.splitlines():
        dash, signer, sig = line.split(" ")
        sig = base64.b64decode(sig)
        if dash == "\u2014" and signer == name and sig[:4].hex() == key_id:
            if not ed25519_verify(key, text.encode(), sig[4:]):
                fail("the checkpoint's signature does not verify")
            return text
    fail(f"the checkpoint has no signature of {name}")


def root_from_proof(index, size, leaf, path):
    """RFC 9162 section 2.1.3.2: the root an inclusion proof leads to."""
    if index >= size:
        fail("the leaf index is beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            fail("the proof is too long")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01", p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01", r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        fail("the proof is too short")
    return r


proof = json.load(open(sys.argv[1]))
with open(sys.argv[2]) as f:
    vkey = f.read()
# 1. The checkpoint is signed by the log's key; its lines are origin, tree size, root hash.
origin, size, root = open_note(proof["checkpoint"], vkey).split("\n")[:3]
# 2. The leaf hash is SHA-256(0x00 || leaf data) (RFC 9162 section 2.1.1).
leaf = sha256(b"\x00", proof["leaf_data"].encode())
if base64.b64decode(proof["leaf_hash"]) != leaf:
    fail("the leaf hash is not the hash of the leaf data")
# 3. The inclusion proof leads from the leaf to the signed root.
path = [base64.b64decode(p) for p in proof["inclusion_proof"]]
if root_from_proof(proof["leaf_index"], int(size), leaf, path) != base64.b64decode(root):
    fail("the inclusion proof does not lead to the signed root")
event = json.loads(proof["leaf_data"])
# 4. Optionally, the event names this very certificate: x5t#S256 = base64url(SHA-256(DER)).
if len(sys.argv) > 3:
    der = ssl.PEM_cert_to_DER_cert(open(sys.argv[3]).read())
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    if event.get("details", {}).get("thumbprint") != thumbprint:
        fail("the logged event names another certificate")
print(f"{event['action']} {event['subject']}: leaf {proof['leaf_index']} of {size} in {origin}: OK")
