package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/iam/iamtest"
	"github.com/kinema/kinema/internal/s3conf/s3test"
)

// clusterServerKey is the KINEMA_SERVER_KEY every node of a test cluster
// (several `kinema serve` on one PostgreSQL index) is given.
const clusterServerKey = "4b696e656d6120636c75737465722074657374207365727665722020206b6579"

// nodeEnv lets the IAM helpers (kinema admin, the SDK, the AWS CLI) talk
// to a `kinema serve` process.
func nodeEnv(p *process) *iamEnv {
	return &iamEnv{s: &server{App: &app.App{URL: p.url}}, root: aws.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret}}
}

// eventually retries cond until it holds, failing after the propagation
// delay package iam states; it returns how long it took.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	d := waitUntil(t, what, iamtest.Propagation, cond)
	t.Logf("%s: after %v", what, d.Round(time.Millisecond))
	return d
}

// waitUntil polls cond until it holds and returns how long that took,
// failing the test after within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// TestScaleTwoNodesShareIAMAndSessions: two `kinema serve` nodes on one
// PostgreSQL schema and one S3 prefix, with one KINEMA_SERVER_KEY. A key
// created on one node works on the other; disabled or deleted on one, it
// is refused on the other within the stated delay; an STS session and an
// HLS session URL minted by one node are accepted by the other.
func TestScaleTwoNodesShareIAMAndSessions(t *testing.T) {
	s3srv := s3test.Start(t)
	s3srv.Bucket(t, "media")
	dsn := pgtest.Schema(t)
	t.Setenv("KINEMA_S3_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("KINEMA_S3_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("KINEMA_SERVER_KEY", clusterServerKey)
	backends := []string{"--index", dsn, "--media", "s3://media/k", "--s3-endpoint", s3srv.Endpoint, "--media-put-interval", "0s",
		"--region", testRegion}
	pa := startProcess(t, t.TempDir(), freePort(t), backends...)
	pb := startProcess(t, t.TempDir(), freePort(t), backends...)
	a, b := nodeEnv(pa), nodeEnv(pb)
	ctx := ctxT(t)
	listWorks := func(e *iamEnv, creds aws.Credentials) func() bool {
		return func() bool {
			_, err := e.kv(creds).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
			return err == nil
		}
	}
	refused := func(e *iamEnv, creds aws.Credentials) func() bool {
		return func() bool {
			_, err := e.kv(creds).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
			return sdkCode(err) == "UnrecognizedClientException"
		}
	}

	// A user and its key, made through node A's admin API.
	ops := a.newKey(t, "", "ops", "ops", adminPolicy)
	eventually(t, "key created on A accepted by B", listWorks(b, ops))
	if _, err := b.kv(ops).CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam"), DataRetentionInHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}
	// Admin calls on B see what A did without waiting: a second key for
	// the user A made, on B, at once.
	second := b.mustAdmin(t, "key", "create", "--user", "ops")
	secondID := second["AccessKey"].(map[string]any)["AccessKeyId"].(string)

	// Media in through A; an HLS session URL minted by A plays from B.
	m := hmMedia(t, "cluster", "320x240", 3, 25)
	start := time.UnixMilli(1_700_000_000_000)
	hmPutTo(t, pa.url, "cam", m, start)
	from, to := start, start.Add(time.Minute)
	hls, err := a.archived(ops).GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("cam"), PlaybackMode: avtypes.HLSPlaybackModeOnDemand,
		HLSFragmentSelector: &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.HLSTimestampRange{StartTimestamp: &from, EndTimestamp: &to}}})
	if err != nil {
		t.Fatal(err)
	}
	onA := aws.ToString(hls.HLSStreamingSessionURL)
	if !strings.HasPrefix(onA, pa.url) {
		t.Fatalf("session URL %s is not node A's", onA)
	}
	onB := pb.url + strings.TrimPrefix(onA, pa.url)
	if body := httpGet(t, hmMediaURL(onB), 200); strings.Count(body, "FragmentNumber=") != 3 {
		t.Fatalf("node A's media playlist from node B lists %d fragments, want 3:\n%s", strings.Count(body, "FragmentNumber="), body)
	}
	if code := statusOf(t, strings.Replace(onB, "SessionToken=", "SessionToken=x", 1)); code == 200 {
		t.Fatal("node B accepted a tampered session token")
	}

	// An STS session from A works on B.
	stdout, stderr, err := a.s.awsCLIAs(t, ops, "sts", "get-session-token", "--duration-seconds", "900")
	if err != nil {
		t.Fatalf("sts get-session-token on A: %v\n%s", err, stderr)
	}
	var got struct {
		Credentials struct{ AccessKeyId, SecretAccessKey, SessionToken string }
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	sess := aws.Credentials{AccessKeyID: got.Credentials.AccessKeyId, SecretAccessKey: got.Credentials.SecretAccessKey,
		SessionToken: got.Credentials.SessionToken}
	if !listWorks(b, sess)() {
		t.Fatal("node B refuses an STS session minted by node A")
	}

	// Disabled on B: refused by A within the delay, with the sessions it
	// made; enabled again, accepted again.
	b.mustAdmin(t, "key", "disable", "--key", ops.AccessKeyID)
	eventually(t, "key disabled on B refused by A", refused(a, ops))
	eventually(t, "session of a key disabled on B refused by A", refused(a, sess))
	a.mustAdmin(t, "key", "enable", "--key", ops.AccessKeyID)
	eventually(t, "key enabled on A accepted by B", listWorks(b, ops))

	// Deleted on A: refused by B.
	a.mustAdmin(t, "key", "delete", "--key", ops.AccessKeyID)
	eventually(t, "key deleted on A refused by B", refused(b, ops))
	// And B lists what is left: the second key only.
	res := b.mustAdmin(t, "key", "list", "--user", "ops")
	if s := jsonString(res); !strings.Contains(s, secondID) || strings.Contains(s, ops.AccessKeyID) {
		t.Fatalf("keys listed on B: %s", s)
	}
}

// TestScaleSharedIndexNeedsServerKey: a node on a PostgreSQL index without
// KINEMA_SERVER_KEY exits and says why, instead of making keys of its own
// that the other nodes would not share.
func TestScaleSharedIndexNeedsServerKey(t *testing.T) {
	t.Setenv("KINEMA_SERVER_KEY", "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := serveOnce(ctx, t, "--index", pgtest.Schema(t))
	if err == nil || !strings.Contains(out, "set KINEMA_SERVER_KEY") {
		t.Fatalf("kinema serve on PostgreSQL without a server key: %v\n%s", err, out)
	}
}

func statusOf(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
