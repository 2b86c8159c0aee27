// An independent checker of certbound's artefacts with Go's crypto/x509 (standard library only,
// no network): go run main.go ROOT INTERMEDIATE ROOT_CRL INTERMEDIATE_CRL LEAF...
// Every leaf must verify for clientAuth (ocsp=FILE: for OCSPSigning) against the root through the intermediate; each CRL
// must parse and verify with its issuer. Prints one line per check; exits 1 on any failure.
package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

func read(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("read %s: %v", path, err)
	}
	if block, _ := pem.Decode(data); block != nil {
		return block.Bytes
	}
	return data
}

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func cert(path string) *x509.Certificate {
	c, err := x509.ParseCertificate(read(path))
	if err != nil {
		fail("parse %s: %v", path, err)
	}
	return c
}

func crl(path string, issuer *x509.Certificate) {
	list, err := x509.ParseRevocationList(read(path))
	if err != nil {
		fail("parse CRL %s: %v", path, err)
	}
	if err := list.CheckSignatureFrom(issuer); err != nil {
		fail("CRL %s signature: %v", path, err)
	}
	fmt.Printf("ok CRL %s number %v, %d revoked\n", path, list.Number, len(list.RevokedCertificates))
}

func main() {
	if len(os.Args) < 6 {
		fail("usage: main ROOT INTERMEDIATE ROOT_CRL INTERMEDIATE_CRL LEAF...")
	}
	root, inter := cert(os.Args[1]), cert(os.Args[2])
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(inter)
	crl(os.Args[3], root)
	crl(os.Args[4], inter)
	for _, path := range os.Args[5:] {
		// "ocsp=FILE": a delegated OCSP responder, verified for id-kp-OCSPSigning.
		usage := x509.ExtKeyUsageClientAuth
		if strings.HasPrefix(path, "ocsp=") {
			path, usage = strings.TrimPrefix(path, "ocsp="), x509.ExtKeyUsageOCSPSigning
		}
		leaf := cert(path)
		opts := x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inters,
			KeyUsages:     []x509.ExtKeyUsage{usage},
		}
		if _, err := leaf.Verify(opts); err != nil {
			fail("verify %s: %v", path, err)
		}
		uris := []string{}
		for _, u := range leaf.URIs {
			uris = append(uris, u.String())
		}
		fmt.Printf("ok %s %s %v\n", path, leaf.Subject, uris)
	}
}
