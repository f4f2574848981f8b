// Package tlsutil provides TLS for `kinema serve`: a self-signed
// certificate authority with a server certificate it issues, kept in a
// directory across restarts, plus the server tls.Config.
//
// TLS matters because the producer SDK's sample applications always call the
// control plane over https (they prefix "https://" to CONTROL_PLANE_URI) and
// verify the peer and its host name. The SDK trusts a private CA given in
// AWS_KVS_CACERT_PATH, which must name a file ending in ".pem" (or a
// directory), so the CA is written as ca.pem for that variable to point at.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the directory given to SelfSigned.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 365 * 24 * time.Hour
	// renewBefore: a certificate that expires sooner than this is replaced
	// at start, so a server restarted now and then never serves an
	// expired one.
	renewBefore = 30 * 24 * time.Hour
	// backdate tolerates clients whose clock is a little behind.
	backdate = time.Hour
)

// SelfSigned returns a server certificate for the given hosts (IP addresses
// and DNS names; a port, if present, is ignored), signed by a Kinema CA. The
// certificate always also covers 127.0.0.1, ::1 and localhost.
//
// The CA and the server certificate are created in dir on first use (ca.pem,
// ca-key.pem, server.pem, server-key.pem; the keys with mode 0600) and
// reused on later starts while still valid for the hosts and not expiring
// within 30 days. Otherwise the server certificate is issued again by the
// same CA, so clients that trust ca.pem keep working; only a CA that is
// missing, unreadable as a CA, or itself about to expire is replaced.
//
// caPath is the absolute path of ca.pem, the file clients must trust (for
// the producer SDK: AWS_KVS_CACERT_PATH).
//
// Two processes creating the same directory at the same moment are not
// supported: each file is replaced atomically, but not the set of them.
func SelfSigned(dir string, hosts []string) (cert tls.Certificate, caPath string, err error) {
	return selfSigned(dir, hosts, time.Now())
}

func selfSigned(dir string, hosts []string, now time.Time) (tls.Certificate, string, error) {
	ips, names, err := parseHosts(hosts)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("tlsutil: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("tlsutil: %w", err)
	}
	caPath := filepath.Join(dir, CAFile)

	ca, caKey, err := loadCA(dir, now)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	if ca == nil {
		if ca, caKey, err = newCA(dir, now); err != nil {
			return tls.Certificate{}, "", err
		}
	} else if cert, ok, err := loadServer(dir, ca, ips, names, now); err != nil {
		return tls.Certificate{}, "", err
	} else if ok {
		return cert, caPath, nil
	}
	cert, err := issueServer(dir, ca, caKey, ips, names, now)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return cert, caPath, nil
}

// ServerConfig returns a server tls.Config: TLS 1.2 at least (the producer
// SDK requires no less), and ALPN offering only "http/1.1" unless http2 is
// true (then "h2", "http/1.1").
//
// HTTP/1.1 is the default because libcurl, under the producer SDK, drops the
// connection and transfer-encoding headers over HTTP/2 after signing them;
// the SigV4 verifier can rebuild them, but plain HTTP/1.1 is what the SDK
// was built against.
//
// Serve with http.Server.Serve(tls.NewListener(ln, cfg)). ServeTLS and
// ListenAndServeTLS rewrite NextProtos from http.Server.Protocols (adding
// "h2" by default), so with those also set Protocols to match.
func ServerConfig(cert tls.Certificate, http2 bool) *tls.Config {
	protos := []string{"http/1.1"}
	if http2 {
		protos = []string{"h2", "http/1.1"}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   protos,
	}
}

// LoadKeyPair loads a PEM certificate (chain) and its private key, as given
// by an operator who brings their own certificate. Unlike
// tls.LoadX509KeyPair it refuses a leaf certificate that has expired or is
// not yet valid, so the mistake shows at start rather than as a TLS error
// in every client.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: loading %s and %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("tlsutil: %s: %w", certFile, err)
		}
	}
	now := time.Now()
	if now.After(cert.Leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("tlsutil: %s expired on %s", certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.Leaf.NotBefore) {
		return tls.Certificate{}, fmt.Errorf("tlsutil: %s is not valid before %s", certFile, cert.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

// parseHosts splits hosts into IP addresses and DNS names, adds the
// loopback defaults, and removes duplicates.
func parseHosts(hosts []string) ([]net.IP, []string, error) {
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	names := []string{"localhost"}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			// An unspecified address is a listen address, never one a
			// client connects to, so it has no place in a certificate.
			if ip.IsUnspecified() {
				continue
			}
			if ip4 := ip.To4(); ip4 != nil {
				ip = ip4
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if strings.ContainsAny(name, " /\\:%@") {
			return nil, nil, fmt.Errorf("tlsutil: %q is neither an IP address nor a DNS name", h)
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return ips, names, nil
}

// loadCA returns the CA in dir, or nil if there is none usable (missing,
// not a CA, key not matching, or expiring within renewBefore). Errors other
// than a missing file are returned: replacing a CA the server merely could
// not read would silently break every client that trusts it.
func loadCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err1 := os.ReadFile(filepath.Join(dir, CAFile))
	keyPEM, err2 := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if errors.Is(err1, fs.ErrNotExist) || errors.Is(err2, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, fmt.Errorf("tlsutil: reading CA: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, nil
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, nil
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 ||
		now.Before(ca.NotBefore) || now.Add(renewBefore).After(ca.NotAfter) {
		return nil, nil, nil
	}
	if err := tightenKeyMode(filepath.Join(dir, CAKeyFile)); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// loadServer returns the server certificate in dir if it is usable as is:
// issued by ca, valid now and for at least renewBefore more, and covering
// every requested IP address and name.
func loadServer(dir string, ca *x509.Certificate, ips []net.IP, names []string, now time.Time) (tls.Certificate, bool, error) {
	certPEM, err1 := os.ReadFile(filepath.Join(dir, ServerFile))
	keyPEM, err2 := os.ReadFile(filepath.Join(dir, ServerKeyFile))
	if errors.Is(err1, fs.ErrNotExist) || errors.Is(err2, fs.ErrNotExist) {
		return tls.Certificate{}, false, nil
	}
	if err := errors.Join(err1, err2); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("tlsutil: reading server certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, nil
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || leaf.CheckSignatureFrom(ca) != nil ||
		now.Before(leaf.NotBefore) || now.Add(renewBefore).After(leaf.NotAfter) {
		return tls.Certificate{}, false, nil
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return tls.Certificate{}, false, nil
		}
	}
	for _, n := range names {
		if !slices.Contains(leaf.DNSNames, n) {
			return tls.Certificate{}, false, nil
		}
	}
	if err := tightenKeyMode(filepath.Join(dir, ServerKeyFile)); err != nil {
		return tls.Certificate{}, false, err
	}
	cert.Leaf = leaf
	return cert, true, nil
}

// newCA creates and saves a CA certificate and key.
func newCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The host name tells apart the CAs of several Kinema servers in
		// a client's trust store.
		Subject:               pkix.Name{Organization: []string{"Kinema"}, CommonName: strings.TrimSpace("Kinema local CA " + host)},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Only leaf certificates below this CA: it cannot be used to
		// mint intermediate CAs if its key leaks.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: creating CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	// Key first: a crash in between leaves a key without its certificate,
	// which the next start treats as no CA at all.
	if err := writeKey(filepath.Join(dir, CAKeyFile), key); err != nil {
		return nil, nil, err
	}
	if err := writeAtomic(filepath.Join(dir, CAFile), pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// issueServer creates, saves and returns a server certificate signed by ca.
func issueServer(dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, ips []net.IP, names []string, now time.Time) (tls.Certificate, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Kinema"}, CommonName: names[0]},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: ips,
		DNSNames:    names,
	}
	der, key, err := signLeaf(ca, caKey, tmpl, now, serverValidity)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: issuing server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: %w", err)
	}
	if err := writeKey(filepath.Join(dir, ServerKeyFile), key); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeAtomic(filepath.Join(dir, ServerFile), pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	// Only the leaf is sent: clients are given ca.pem as a root, and a
	// root in the chain is ignored at best.
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// signLeaf makes a P-256 key and a leaf certificate for it from tmpl
// (subject, extended key usages, names), signed by ca, valid from a little
// before now for validity but never past the CA.
func signLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate, now time.Time, validity time.Duration) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, nil, err
	}
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.NotAfter) {
		// A certificate outliving its issuer would be rejected anyway.
		tmpl.NotAfter = ca.NotAfter
	}
	// ECDSA keys sign; they are never used for key encipherment.
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	return der, key, err
}

// CA is the Kinema CA kept in a directory (ca.pem, ca-key.pem): the one
// that signs SelfSigned's server certificate, and, for the device
// credentials endpoint, device and endpoint certificates. One CA file then
// lets a camera trust every Kinema endpoint.
type CA struct {
	Cert *x509.Certificate
	// Path is the absolute path of ca.pem.
	Path string
	key  *ecdsa.PrivateKey
	pem  []byte
}

// OpenCA loads the CA in dir, creating it when there is none usable, by
// the rules of SelfSigned.
func OpenCA(dir string) (*CA, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsutil: %w", err)
	}
	now := time.Now()
	cert, key, err := loadCA(dir, now)
	if err != nil {
		return nil, err
	}
	if cert == nil {
		if cert, key, err = newCA(dir, now); err != nil {
			return nil, err
		}
	}
	return &CA{Cert: cert, Path: filepath.Join(dir, CAFile), key: key, pem: pemBlock("CERTIFICATE", cert.Raw)}, nil
}

// PEM is the CA certificate, PEM-encoded.
func (ca *CA) PEM() []byte { return ca.pem }

// IssueClient makes a key pair and a client certificate (extended key usage
// client authentication) for commonName, valid for validity; PEM-encoded,
// the key as PKCS #8.
func (ca *CA) IssueClient(commonName string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Kinema device"}, CommonName: commonName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, key, err := signLeaf(ca.Cert, ca.key, tmpl, time.Now(), validity)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: issuing client certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", kder), nil
}

// ServerCertificate issues a server certificate for hosts (kept in memory
// only: it is made again at every start), covering 127.0.0.1, ::1 and
// localhost too.
func (ca *CA) ServerCertificate(hosts []string) (tls.Certificate, error) {
	ips, names, err := parseHosts(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Kinema"}, CommonName: names[0]},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: ips,
		DNSNames:    names,
	}
	der, key, err := signLeaf(ca.Cert, ca.key, tmpl, time.Now(), serverValidity)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: issuing server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// VerifyClient checks that cert is a client certificate issued by the CA.
func (ca *CA) VerifyClient(cert *x509.Certificate) error {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

func randomSerial() (*big.Int, error) {
	// 128 random bits, as the CA/Browser Forum asks for at least 64.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("tlsutil: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // serials must be positive
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("tlsutil: %w", err)
	}
	return writeAtomic(path, pemBlock("PRIVATE KEY", der), 0o600)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeAtomic writes data to a temporary file and renames it over path, so
// a reader (or a crash) never sees half a file. The file gets mode perm
// before any secret is written to it.
func writeAtomic(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("tlsutil: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tlsutil: writing %s: %w", path, err)
	}
	return nil
}

// tightenKeyMode makes an existing private key file readable by its owner
// only, in case it was copied in or its mode changed since it was written.
func tightenKeyMode(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("tlsutil: %w", err)
	}
	if st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("tlsutil: restricting %s to mode 0600: %w", path, err)
	}
	return nil
}
