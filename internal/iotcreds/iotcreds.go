// Package iotcreds is Kinema's device credentials endpoint and the CA behind
// it, compatible with the AWS IoT credentials provider that the KVS producer
// SDKs call when configured with a device certificate:
//
//	GET /role-aliases/{alias}/credentials
//	x-amzn-iot-thingname: cam-1
//	(over TLS with the device's client certificate)
//
// answers {"credentials": {accessKeyId, secretAccessKey, sessionToken,
// expiration}} for the role the alias names, bound to the thing, so a role
// policy can say arn:...:stream/${credentials-iot:ThingName}/*. The package
// owns the use of the Kinema CA (tlsutil's, in the data dir) for device and
// endpoint certificates, the mTLS listener's TLS configuration and the
// endpoint; which certificates are registered, and the sessions, are iam's.
package iotcreds

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/limits"
	"github.com/kinema/kinema/internal/tlsutil"
)

// CA issues and checks device certificates with the Kinema CA of the data
// dir (tlsutil.CA), the one that also signs the KVS listener's self-signed
// certificate, so one CA file serves a camera for both endpoints.
type CA struct {
	*tlsutil.CA
	// Validity of issued device certificates.
	Validity time.Duration
}

// OpenCA opens (creating on first use) the Kinema CA in dir.
func OpenCA(dir string) (*CA, error) {
	ca, err := tlsutil.OpenCA(dir)
	if err != nil {
		return nil, err
	}
	return &CA{CA: ca, Validity: 365 * 24 * time.Hour}, nil
}

// Issue makes a key pair and a client certificate for a thing.
func (ca *CA) Issue(thing string) (certPEM, keyPEM []byte, err error) {
	return ca.IssueClient(thing, ca.Validity)
}

// Verify checks that cert is a client certificate issued by the CA.
func (ca *CA) Verify(cert *x509.Certificate) error { return ca.VerifyClient(cert) }

// ServerConfig is the TLS configuration of the credentials listener: a
// server certificate from the CA for hosts, and client certificates
// required and verified against the CA. Whether a verified certificate is
// registered (and not revoked) is checked per request.
func (ca *CA) ServerConfig(hosts []string) (*tls.Config, error) {
	cert, err := ca.ServerCertificate(hosts)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}, nil
}

// Fingerprint is how a certificate is registered: hex(sha256(DER)).
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Handler serves GET /role-aliases/{alias}/credentials.
type Handler struct {
	IAM    *iam.Service
	Limits *limits.Limiter
	Logger *slog.Logger
}

// credentialsOut is the AWS IoT credentials provider's answer.
type credentialsOut struct {
	Credentials struct {
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
		SessionToken    string `json:"sessionToken"`
		Expiration      string `json:"expiration"`
	} `json:"credentials"`
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if h.Logger != nil {
		h.Logger.Info("device credentials refused", "status", status, "msg", msg, "remote", r.RemoteAddr)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"message": msg})
	w.Write(b)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	alias, ok := strings.CutPrefix(r.URL.Path, "/role-aliases/")
	if ok {
		alias, ok = strings.CutSuffix(alias, "/credentials")
	}
	if !ok || alias == "" || strings.Contains(alias, "/") {
		h.fail(w, r, http.StatusNotFound, "no such resource; the endpoint is GET /role-aliases/{alias}/credentials")
		return
	}
	if r.Method != http.MethodGet {
		h.fail(w, r, http.StatusMethodNotAllowed, "credentials are fetched with GET")
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		h.fail(w, r, http.StatusForbidden, "a client certificate is required")
		return
	}
	fp := Fingerprint(r.TLS.PeerCertificates[0])
	if h.Limits != nil {
		release, err := h.Limits.Key("device:"+fp, false)
		if err != nil {
			h.fail(w, r, http.StatusTooManyRequests, "Rate exceeded")
			return
		}
		release()
	}
	dev, ok := h.IAM.Device(fp)
	deny := func(why string) {
		h.IAM.Audit().Record(iam.AuditEvent{Kind: "deny", Principal: "certificate/" + fp, Action: "iot:AssumeRoleWithCertificate",
			Resource: "rolealias/" + alias, SourceIP: iam.SourceIP(r).String(), Result: "Denied", Detail: why})
		h.fail(w, r, http.StatusForbidden, "Access Denied")
	}
	switch {
	case !ok:
		deny("certificate not registered")
		return
	case dev.Status != iam.DeviceActive:
		deny("certificate revoked")
		return
	}
	thing := r.Header.Get("x-amzn-iot-thingname")
	if thing != "" && thing != dev.Thing {
		deny("thing name " + thing + " is not the certificate's (" + dev.Thing + ")")
		return
	}
	ra, ok := h.IAM.RoleAlias(alias)
	if !ok || ra.Account != dev.Account {
		// Another account's alias is as absent as a missing one.
		h.fail(w, r, http.StatusNotFound, "Role alias does not exist")
		return
	}
	role, ok := h.IAM.Role(ra.Account, ra.Role)
	if !ok {
		h.fail(w, r, http.StatusNotFound, "the role of the alias does not exist")
		return
	}
	creds, _, err := h.IAM.IssueSession(iam.SessionSpec{Role: role, Name: dev.Thing, Thing: dev.Thing, Device: fp,
		Duration: time.Duration(ra.DurationSeconds) * time.Second})
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, "internal error")
		return
	}
	var out credentialsOut
	out.Credentials.AccessKeyID = creds.AccessKeyID
	out.Credentials.SecretAccessKey = creds.SecretAccessKey
	out.Credentials.SessionToken = creds.SessionToken
	out.Credentials.Expiration = iam.FormatExpiry(creds.Expiration)
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
