package tlsutil

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve starts an HTTPS server on 127.0.0.1 with cfg, the way `kinema serve`
// is meant to (tls.NewListener + Serve, so NextProtos is kept), and returns
// its port.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "kinema "+r.Proto)
	})}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// clientTrusting returns an http.Client that trusts only the CA in caPath,
// offers h2 and http/1.1, and dials 127.0.0.1 whatever the host name, so
// that certificate names can be tested without DNS.
func clientTrusting(t *testing.T, caPath string) *http.Client {
	t.Helper()
	pemData, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("ca.pem holds no certificate")
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		},
	}}
}

func get(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d", url, resp.StatusCode)
	}
	return resp
}

func TestSelfSignedServesHTTPS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	cert, caPath, err := SelfSigned(dir, []string{"kinema.example", "10.1.2.3", "cam-gw.local:8443", "0.0.0.0", "[fd00::7]"})
	if err != nil {
		t.Fatal(err)
	}
	if caPath != filepath.Join(dir, CAFile) || !filepath.IsAbs(caPath) || !strings.HasSuffix(caPath, ".pem") {
		t.Fatalf("caPath %q", caPath)
	}
	for name, mode := range map[string]os.FileMode{CAFile: 0o644, CAKeyFile: 0o600, ServerFile: 0o644, ServerKeyFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}

	leaf := cert.Leaf
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("server key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 364*24*time.Hour || d > 367*24*time.Hour {
		t.Errorf("server validity %v", d)
	}
	ca := readCert(t, caPath)
	if !ca.IsCA || ca.NotAfter.Sub(ca.NotBefore) < 3650*24*time.Hour {
		t.Errorf("CA: IsCA %v, validity %v", ca.IsCA, ca.NotAfter.Sub(ca.NotBefore))
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		t.Fatal(err)
	}
	wantDNS := []string{"localhost", "kinema.example", "cam-gw.local"}
	if strings.Join(leaf.DNSNames, ",") != strings.Join(wantDNS, ",") {
		t.Errorf("DNS names %q, want %q", leaf.DNSNames, wantDNS)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got := strings.Join(ips, ","); got != "127.0.0.1,::1,10.1.2.3,fd00::7" {
		t.Errorf("IP addresses %s", got)
	}

	port := serve(t, ServerConfig(cert, false))
	c := clientTrusting(t, caPath)
	for _, host := range []string{"127.0.0.1", "localhost", "kinema.example", "10.1.2.3", "[::1]"} {
		resp := get(t, c, "https://"+net.JoinHostPort(strings.Trim(host, "[]"), port)+"/")
		// The client offered h2; the server must have picked http/1.1.
		if resp.Proto != "HTTP/1.1" || resp.TLS.NegotiatedProtocol != "http/1.1" {
			t.Errorf("%s: proto %s, ALPN %q", host, resp.Proto, resp.TLS.NegotiatedProtocol)
		}
		if resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("TLS version %x", resp.TLS.Version)
		}
	}
	if _, err := c.Get("https://" + net.JoinHostPort("other.example", port) + "/"); err == nil {
		t.Error("a name not in the certificate was accepted")
	}
	// A client with only the system roots must not trust it.
	if _, err := http.Get("https://127.0.0.1:" + port + "/"); err == nil {
		t.Error("certificate trusted without ca.pem")
	}
}

func TestSelfSignedCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required for this test (scripts/setup.sh installs it)")
	}
	cert, caPath, err := SelfSigned(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		http2 bool
		want  string
	}{{false, "kinema HTTP/1.1 1.1"}, {true, "kinema HTTP/2.0 2"}} {
		port := serve(t, ServerConfig(cert, tc.http2))
		// curl offers h2 by default, like the producer SDK's libcurl.
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "--cacert", caPath,
			"-w", " %{http_version}", "https://127.0.0.1:"+port+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		if string(out) != tc.want {
			t.Errorf("http2=%v: curl got %q, want %q", tc.http2, out, tc.want)
		}
	}
	// Without --cacert, curl must refuse the certificate (error 60).
	port := serve(t, ServerConfig(cert, false))
	err = exec.Command(curl, "-sS", "--max-time", "10", "https://127.0.0.1:"+port+"/").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 60 {
		t.Errorf("curl without the CA: %v, want exit status 60", err)
	}
}

func TestServerConfigALPN(t *testing.T) {
	cert, caPath, err := SelfSigned(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig(cert, false)
	if cfg.MinVersion != tls.VersionTLS12 || strings.Join(cfg.NextProtos, ",") != "http/1.1" {
		t.Fatalf("default config: min %x, ALPN %q", cfg.MinVersion, cfg.NextProtos)
	}
	if got := ServerConfig(cert, true).NextProtos; strings.Join(got, ",") != "h2,http/1.1" {
		t.Fatalf("http2 ALPN %q", got)
	}
	port := serve(t, ServerConfig(cert, true))
	resp := get(t, clientTrusting(t, caPath), "https://127.0.0.1:"+port+"/")
	if resp.Proto != "HTTP/2.0" || resp.TLS.NegotiatedProtocol != "h2" {
		t.Fatalf("http2=true: proto %s, ALPN %q", resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	// TLS 1.1 is refused.
	conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestSelfSignedReuse(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	first, _, err := selfSigned(dir, []string{"kinema.example"}, now)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := readFile(t, filepath.Join(dir, CAFile))
	serverPEM := readFile(t, filepath.Join(dir, ServerFile))

	// A later start, same or fewer hosts: everything reused.
	for _, hosts := range [][]string{{"kinema.example"}, {"KINEMA.example."}, nil} {
		again, _, err := selfSigned(dir, hosts, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Certificate[0], first.Certificate[0]) {
			t.Fatalf("hosts %q: server certificate was re-issued", hosts)
		}
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, ServerFile)), serverPEM) {
		t.Fatal("server.pem rewritten")
	}

	// A new host: new server certificate, same CA.
	more, _, err := selfSigned(dir, []string{"kinema.example", "192.168.1.10"}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(more.Certificate[0], first.Certificate[0]) {
		t.Fatal("new host did not re-issue the server certificate")
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, CAFile)), caPEM) {
		t.Fatal("CA changed for a new host")
	}

	// 340 days on, the server certificate expires within 30 days:
	// re-issued by the same CA.
	later := now.Add(340 * 24 * time.Hour)
	renewed, _, err := selfSigned(dir, []string{"kinema.example", "192.168.1.10"}, later)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(renewed.Certificate[0], more.Certificate[0]) || !renewed.Leaf.NotAfter.After(later.Add(300*24*time.Hour)) {
		t.Fatalf("not renewed: NotAfter %v", renewed.Leaf.NotAfter)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, CAFile)), caPEM) {
		t.Fatal("CA changed on server renewal")
	}
	if err := renewed.Leaf.CheckSignatureFrom(readCert(t, filepath.Join(dir, CAFile))); err != nil {
		t.Fatal(err)
	}

	// Near the end of the CA's ten years: a new CA, and a server
	// certificate that does not outlive the old one in the meantime.
	end := now.Add(caValidity - 40*24*time.Hour)
	cert, _, err := selfSigned(dir, nil, end)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, CAFile)), caPEM) {
		t.Fatal("CA replaced 40 days before expiry")
	}
	if cert.Leaf.NotAfter.After(readCert(t, filepath.Join(dir, CAFile)).NotAfter) {
		t.Fatal("server certificate outlives its CA")
	}
	if _, _, err := selfSigned(dir, nil, now.Add(caValidity-20*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(readFile(t, filepath.Join(dir, CAFile)), caPEM) {
		t.Fatal("CA not replaced 20 days before expiry")
	}
}

// Broken files are replaced; unreadable ones are an error, not a reason to
// mint a new CA.
func TestSelfSignedDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := SelfSigned(dir, nil); err != nil {
		t.Fatal(err)
	}
	caPEM := readFile(t, filepath.Join(dir, CAFile))

	// A garbled server key: re-issued, same CA.
	os.WriteFile(filepath.Join(dir, ServerKeyFile), []byte("garbage"), 0o600)
	if _, _, err := SelfSigned(dir, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, CAFile)), caPEM) {
		t.Fatal("CA replaced because of a bad server key")
	}

	// A server key left world-readable is tightened to 0600.
	os.Chmod(filepath.Join(dir, ServerKeyFile), 0o644)
	if _, _, err := SelfSigned(dir, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, ServerKeyFile)); st.Mode().Perm() != 0o600 {
		t.Fatalf("server key mode %v", st.Mode().Perm())
	}

	// A CA key that is a directory cannot be read: error.
	os.Remove(filepath.Join(dir, CAKeyFile))
	os.Mkdir(filepath.Join(dir, CAKeyFile), 0o700)
	if _, _, err := SelfSigned(dir, nil); err == nil {
		t.Fatal("unreadable CA key did not fail")
	}
	os.Remove(filepath.Join(dir, CAKeyFile))

	// A missing CA key: new CA, new server certificate under it.
	cert, caPath, err := SelfSigned(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(readFile(t, caPath), caPEM) {
		t.Fatal("CA kept without its key")
	}
	if err := cert.Leaf.CheckSignatureFrom(readCert(t, caPath)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := SelfSigned(dir, []string{"bad name"}); err == nil {
		t.Fatal("a host with a space was accepted")
	}
}

func TestLoadKeyPair(t *testing.T) {
	dir := t.TempDir()
	want, _, err := SelfSigned(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadKeyPair(filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Certificate[0], want.Certificate[0]) || got.Leaf == nil {
		t.Fatal("loaded a different certificate")
	}
	if _, err := LoadKeyPair(filepath.Join(dir, ServerFile), filepath.Join(dir, CAKeyFile)); err == nil {
		t.Fatal("mismatched key accepted")
	}
	if _, err := LoadKeyPair(filepath.Join(dir, "missing.pem"), filepath.Join(dir, ServerKeyFile)); err == nil {
		t.Fatal("missing file accepted")
	}

	// An expired certificate is refused at load.
	old := t.TempDir()
	if _, _, err := selfSigned(old, nil, time.Now().Add(-400*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err = LoadKeyPair(filepath.Join(old, ServerFile), filepath.Join(old, ServerKeyFile))
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired certificate: %v", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(readFile(t, path))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
