package iam

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kinema/kinema/internal/sigv4"
)

// benchCred is one key of loadedService.
type benchCred struct{ id, secret, user string }

// loadedService opens a Service on an SQLite store holding 10,000 users
// with a key each and 1,000 policies, three attached to each user.
func loadedService(b *testing.B) (*Service, []benchCred) {
	const nKeys, nPolicies = 10000, 1000
	ctx := context.Background()
	store, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "iam.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	s, err := Open(ctx, Options{Store: store, ServerKey: make([]byte, 32), DefaultAccount: "000000000000"})
	if err != nil {
		b.Fatal(err)
	}
	acct := s.DefaultAccount()
	// Bulk load through the store in one batch (10,000 one-row
	// transactions would measure the disk, not authorization), then open
	// the service on it as the server does at start.
	var recs []Record
	for i := range nPolicies {
		var doc string
		switch i % 3 {
		case 0:
			doc = fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesisvideo:PutMedia","kinesisvideo:DescribeStream","kinesisvideo:GetDataEndpoint"],"Resource":"arn:aws:kinesisvideo:*:*:stream/${aws:username}/*"},{"Effect":"Deny","Action":"kinesisvideo:Delete*","Resource":"*"}]}`)
		case 1:
			doc = fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesisvideo:Get*","kinesisvideo:List*","kinesisvideo:Describe*"],"Resource":"arn:aws:kinesisvideo:us-west-2:%s:stream/site-%d-*/*","Condition":{"StringEquals":{"aws:ResourceTag/site":"site-%d"},"DateLessThan":{"aws:CurrentTime":"2099-01-01T00:00:00Z"}}}]}`, acct, i, i)
		default:
			doc = fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotAction":"kinesisvideo:*","Resource":"*"},{"Effect":"Allow","Action":"kinesisvideo:ListStreams","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.%d.0.0/16"}}}]}`, i%256)
		}
		recs = append(recs, put(kindPolicy, qualify(acct, fmt.Sprintf("p%d", i)), &StoredPolicy{Account: acct, Name: fmt.Sprintf("p%d", i), Document: doc}))
	}
	creds := make([]benchCred, nKeys)
	for i := range nKeys {
		user := fmt.Sprintf("cam-%d", i)
		pols := []string{fmt.Sprintf("p%d", (i*3)%nPolicies), fmt.Sprintf("p%d", (i*3+1)%nPolicies), fmt.Sprintf("p%d", (i*3+2)%nPolicies)}
		recs = append(recs, put(kindUser, qualify(acct, user), &User{Account: acct, Name: user, Policies: pols}))
		id, secret := NewKeyPair("AKIA")
		creds[i] = benchCred{id, secret, user}
		recs = append(recs, put(kindKey, id, &AccessKey{ID: id, Account: acct, User: user, Status: KeyActive,
			SecretEnc: s.seal.seal("access-key:"+id, []byte(secret))}))
	}
	if _, err := store.Apply(ctx, s.version, recs); err != nil {
		b.Fatal(err)
	}
	if s, err = Open(ctx, Options{Store: store, ServerKey: make([]byte, 32), DefaultAccount: acct}); err != nil {
		b.Fatal(err)
	}
	return s, creds
}

// BenchmarkAuthorization measures what every request pays before its
// handler runs: SigV4 verification (key lookup, signing-key derivation,
// canonical request, HMAC) plus policy evaluation, with 10,000 access keys
// and 1,000 policies in the service, each user holding three policies
// (device policies with policy variables, viewer policies with tag and time
// conditions, deny statements). Each iteration is a different pre-signed
// request by a different key, so the signing-key cache mostly misses. It
// reports the p50, p99 and max of the per-request cost:
//
//	go test -run '^$' -bench BenchmarkAuthorization -benchtime 20000x ./internal/iam/
func BenchmarkAuthorization(b *testing.B) {
	ctx := context.Background()
	s, creds := loadedService(b)
	acct := s.DefaultAccount()
	v := &sigv4.Verifier{Service: "kinesisvideo", Credentials: s}

	// Pre-signed requests, one per key (round robin over b.N).
	type signed struct {
		r    *http.Request
		body []byte
		arn  string
		act  string
	}
	n := min(b.N, len(creds))
	reqs := make([]signed, n)
	now := time.Now()
	for i := range n {
		c := creds[i]
		body := []byte(fmt.Sprintf(`{"StreamName":"%s"}`, c.user))
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:4566/describeStream", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: c.id, SecretAccessKey: c.secret}, r, hex.EncodeToString(sum[:]), "kinesisvideo", "us-west-2", now); err != nil {
			b.Fatal(err)
		}
		reqs[i] = signed{r, body, "arn:aws:kinesisvideo:us-west-2:" + acct + ":stream/" + c.user + "/1700000000000", "kinesisvideo:DescribeStream"}
	}
	tags := map[string]string{"site": "site-1"}
	// Both clocks per request: wall time, which on a shared machine
	// includes waiting for a core, and the thread's CPU time, which is what
	// the request cost.
	wall := make([]time.Duration, 0, b.N)
	cpu := make([]time.Duration, 0, b.N)
	allowed := 0
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := &reqs[i%n]
		c0 := threadCPUTime()
		t0 := time.Now()
		p, err := s.Authenticate(q.r, v, q.body, false)
		if err != nil {
			b.Fatal(err)
		}
		d := s.Authorize(p, &Request{Action: q.act, Resource: q.arn, Now: t0, Tags: func() map[string]string { return tags }})
		wall = append(wall, time.Since(t0))
		cpu = append(cpu, threadCPUTime()-c0)
		if d == Allow {
			allowed++
		}
	}
	b.StopTimer()
	if allowed == 0 {
		b.Fatal("no request was allowed: the benchmark measures nothing realistic")
	}
	report := func(lat []time.Duration, clock string) {
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1000 }
		b.ReportMetric(pct(0.50), clock+"-p50-µs")
		b.ReportMetric(pct(0.99), clock+"-p99-µs")
		b.ReportMetric(pct(0.999), clock+"-p99.9-µs")
	}
	report(wall, "wall")
	report(cpu, "cpu")
	b.ReportMetric(float64(allowed)/float64(b.N), "allowed-ratio")
}

// BenchmarkReload measures what a node does when another node changed IAM:
// read the whole store (10,000 users and keys, 1,000 policies), decrypt
// every secret and compile every policy.
//
//	go test -run '^$' -bench BenchmarkReload -benchtime 20x ./internal/iam/
func BenchmarkReload(b *testing.B) {
	ctx := context.Background()
	s, _ := loadedService(b)
	b.ResetTimer()
	for range b.N {
		if _, _, _, err := s.read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
