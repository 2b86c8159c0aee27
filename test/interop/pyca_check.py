"""pyca/cryptography as an independent checker of certbound's artefacts.

python3 pyca_check.py ROOT INTERMEDIATE ROOT_CRL INTERMEDIATE_CRL OCSP_RESPONSE SIGNER LEAF...
Strict parsing of every certificate, both CRLs (signatures checked) and the OCSP response;
with pyca >= 42, its X.509 verifier builds each leaf's path (client profile). Prints "ok ..."
lines and "skip ..." lines with the reason; exits 1 on any failure.
"""
import sys

import cryptography
from cryptography import x509
from cryptography.x509 import ocsp


def load_cert(path):
    data = open(path, "rb").read()
    return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)


def main(argv):
    root, inter = load_cert(argv[1]), load_cert(argv[2])
    for path, issuer in ((argv[3], root), (argv[4], inter)):
        crl = x509.load_der_x509_crl(open(path, "rb").read())
        if not crl.is_signature_valid(issuer.public_key()):
            raise SystemExit(f"FAIL CRL {path}: signature")
        print(f"ok CRL {path}: {len(list(crl))} revoked, number {crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number}")
    response = ocsp.load_der_ocsp_response(open(argv[5], "rb").read())
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise SystemExit(f"FAIL OCSP status {response.response_status}")
    signer = load_cert(argv[6])
    print(f"ok OCSP response: {response.certificate_status.name}, responder certs {len(response.certificates)}")
    leaves = [load_cert(p) for p in argv[7:]]
    for leaf, path in zip(leaves, argv[7:]):
        print(f"ok parsed {path}: {leaf.subject.rfc4514_string()}")
    major = int(cryptography.__version__.split(".")[0])
    if major < 42:
        print(f"skip verifier: pyca/cryptography {cryptography.__version__} has no X.509 verifier (42+)")
        return
    from cryptography.x509.verification import PolicyBuilder, Store

    verifier = PolicyBuilder().store(Store([root])).build_client_verifier()
    for leaf, path in zip(leaves, argv[7:]):
        verified = verifier.verify(leaf, [inter])
        print(f"ok verified {path}: {[str(n.value) for n in verified.subjects]}")
    # The delegated responder: not a TLS client, so only its issuer and signature are checked.
    signer.verify_directly_issued_by(inter)
    print("ok OCSP signer issued by the intermediate")


if __name__ == "__main__":
    main(sys.argv)
