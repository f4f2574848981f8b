package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"
)

// The CA of a directory is the one SelfSigned uses, and the client
// certificates it issues verify against it and nothing else: not its own
// server certificates (wrong key usage), not another CA's.
func TestCAIssuesClientCertificates(t *testing.T) {
	dir := t.TempDir()
	_, caPath, err := SelfSigned(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := OpenCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Path != caPath {
		t.Fatalf("OpenCA path %s, SelfSigned's %s", ca.Path, caPath)
	}
	certPEM, keyPEM, err := ca.IssueClient("cam-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("issued pair: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if leaf.Subject.CommonName != "cam-1" || leaf.NotAfter.After(time.Now().Add(time.Hour+time.Minute)) {
		t.Fatalf("certificate %v until %v", leaf.Subject, leaf.NotAfter)
	}
	if err := ca.VerifyClient(leaf); err != nil {
		t.Fatalf("own client certificate: %v", err)
	}
	srv, err := ca.ServerCertificate([]string{"example.test"})
	if err != nil {
		t.Fatal(err)
	}
	srvLeaf, _ := x509.ParseCertificate(srv.Certificate[0])
	if err := ca.VerifyClient(srvLeaf); err == nil {
		t.Fatal("a server certificate verified as a client certificate")
	}
	other, err := OpenCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.VerifyClient(leaf); err == nil {
		t.Fatal("another CA's client certificate verified")
	}
	if blk, _ := pem.Decode(ca.PEM()); blk == nil || !ca.Cert.Equal(mustParse(t, blk.Bytes)) {
		t.Fatal("PEM is not the CA certificate")
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
