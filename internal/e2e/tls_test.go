package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"

	"github.com/kinema/kinema/internal/app"
)

// With --tls the server makes a CA and a certificate for 127.0.0.1, speaks
// HTTP/1.1 only (ALPN), and GetDataEndpoint hands out the https URL.
func TestSelfSignedTLS(t *testing.T) {
	s := startServer(t, func(c *app.Config) { c.TLS = true })
	if !strings.HasPrefix(s.URL, "https://") || !strings.HasSuffix(s.CAPath, ".pem") {
		t.Fatalf("URL %s, CA %s", s.URL, s.CAPath)
	}
	pem, err := os.ReadFile(s.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	cfg := sdkConfig()
	cfg.HTTPClient = hc
	kv := kinesisvideo.NewFromConfig(cfg, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(s.URL) })
	ctx := ctxT(t)
	if _, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam")}); err != nil {
		t.Fatal(err)
	}
	ep, err := kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("cam"), APIName: types.APINamePutMedia})
	if err != nil || aws.ToString(ep.DataEndpoint) != s.URL {
		t.Fatalf("DataEndpoint %v, %v", aws.ToString(ep.DataEndpoint), err)
	}
	// ALPN offers only http/1.1, even to a client that asks for h2.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL, "https://"), &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("ALPN negotiated %q", p)
	}
	conn.Close()
	// curl trusts the CA file the server printed (what cameras get as AWS_KVS_CACERT_PATH).
	out, err := exec.Command("curl", "-sS", "--cacert", s.CAPath, "-o", "/dev/null", "-d", "{}", "-w", "%{http_code} %{http_version}", s.URL+"/listStreams").CombinedOutput()
	if err != nil || string(out) != "403 1.1" {
		t.Fatalf("curl over TLS: %v %s", err, out)
	}
	// The same CA and certificate are reused on restart.
	s2 := s.restartTLS(t)
	if pem2, _ := os.ReadFile(s2.CAPath); string(pem2) != string(pem) {
		t.Fatal("CA changed across restarts")
	}
}
