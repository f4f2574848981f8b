package app_test

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/iam/iampg"
	"github.com/kinema/kinema/internal/mediatest"
	"github.com/kinema/kinema/internal/producer"
	"github.com/kinema/kinema/internal/s3conf"
	"github.com/kinema/kinema/internal/s3conf/s3test"
)

const (
	rootKey    = "AKIAKINEMACLUSTERTST"
	rootSecret = "cluster-test-secret-key-000000000000000000"
	serverKey1 = "6b696e656d6120617070207465737420736572766572206b6579206f6e65212a"
	serverKey2 = "6b696e656d6120617070207465737420736572766572206b65792074776f212a"
)

// cluster is what the nodes of one test cluster share: a PostgreSQL
// schema and an S3 prefix.
type cluster struct {
	dsn string
	s3  *s3test.Server
}

func newCluster(t *testing.T) cluster {
	s := s3test.Start(t)
	s.Bucket(t, "media")
	return cluster{dsn: pgtest.Schema(t), s3: s}
}

func (c cluster) config(dataDir, serverKey string) app.Config {
	return app.Config{DataDir: dataDir, Listen: "127.0.0.1:0", AccessKeyID: rootKey, SecretAccessKey: rootSecret,
		Index: c.dsn, Media: "s3://media/k", ServerKey: serverKey,
		S3: s3conf.Config{Endpoint: c.s3.Endpoint, AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey, PathStyle: true}}
}

// start starts a node. The node before it on the schema has just
// stopped: PostgreSQL drops its one-node lock when that session's backend
// has exited, which may be a moment after the connection closed.
func start(t *testing.T, cfg app.Config) *app.App {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a, err := app.Start(context.Background(), cfg)
		if err == nil {
			return a
		}
		if !errors.Is(err, pgindex.ErrNodeLocked) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

func stop(t *testing.T, a *app.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An HLS session URL minted by one node verifies on another node of the
// cluster, with its own empty data dir, because both derive the session
// key from the server key; on a node with another server key it does not.
// (The nodes run one after the other: until the index's one-node lock is
// lifted, two at once on one schema are refused.)
func TestSessionURLVerifiesOnAnotherNode(t *testing.T) {
	c := newCluster(t)
	media := &mediatest.Recipes{Dir: t.TempDir(), Make: map[string]string{"cam.mkv": "ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -t 2 " +
		"-c:v libx264 -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p $OUT"}}
	m, err := producer.OpenFile(context.Background(), media.File(t, "cam.mkv"))
	if err != nil {
		t.Fatal(err)
	}
	a := start(t, c.config(t.TempDir(), serverKey1))
	begin := time.UnixMilli(1_700_000_000_000)
	plans := m.Fragments(0)
	res, err := producer.Put(context.Background(), producer.Config{Endpoint: a.URL, StreamName: "cam", AccessKeyID: rootKey,
		SecretAccessKey: rootSecret, CreateStream: true, RetentionHours: 24, StartTime: begin}, plans, m.Header)
	if err != nil || res.Counts[producer.AckPersisted] != len(plans) {
		t.Fatalf("put: %v %v", res.Counts, err)
	}
	am := kinesisvideoarchivedmedia.New(kinesisvideoarchivedmedia.Options{Region: "us-east-1", BaseEndpoint: aws.String(a.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: rootKey, SecretAccessKey: rootSecret}, nil
		})})
	end := begin.Add(time.Minute)
	out, err := am.GetHLSStreamingSessionURL(context.Background(), &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("cam"), PlaybackMode: avtypes.HLSPlaybackModeOnDemand,
		HLSFragmentSelector: &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.HLSTimestampRange{StartTimestamp: &begin, EndTimestamp: &end}}})
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(aws.ToString(out.HLSStreamingSessionURL), a.URL)
	if code, body := get(t, a.URL+path); code != 200 || !strings.HasPrefix(body, "#EXTM3U") {
		t.Fatalf("on the minting node: %d %s", code, body)
	}
	stop(t, a)

	b := start(t, c.config(t.TempDir(), serverKey1))
	code, body := get(t, b.URL+path)
	stop(t, b)
	if code != 200 || !strings.HasPrefix(body, "#EXTM3U") {
		t.Fatalf("another node with the same server key: %d %s", code, body)
	}

	other := start(t, c.config(t.TempDir(), serverKey2))
	code, body = get(t, other.URL+path)
	stop(t, other)
	if code == 200 {
		t.Fatalf("a node with another server key accepted the session URL: %s", body)
	}
}

// A node on a PostgreSQL index refuses to start without a configured
// server key, before touching anything.
func TestSharedIndexRequiresServerKey(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	_, err := app.Start(context.Background(), c.config(dir, ""))
	if err == nil || !strings.Contains(err.Error(), "set KINEMA_SERVER_KEY") {
		t.Fatalf("start without a server key: %v", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*.key")); len(matches) != 0 {
		t.Fatalf("the refused node made keys: %v", matches)
	}
}

// IAM on a PostgreSQL index is in PostgreSQL: a user created through one
// node is there for a node started later with an empty data dir. A node's
// iam.db (where IAM lived before it moved to PostgreSQL) is imported into
// an empty shared store once.
func TestIAMLivesInPostgreSQL(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	old := t.TempDir()
	// What a node on this index kept in its data dir before.
	legacy, err := iam.OpenSQLite(ctx, filepath.Join(old, "iam.db"))
	if err != nil {
		t.Fatal(err)
	}
	key := mustHex(t, serverKey1)
	svc, err := iam.Open(ctx, iam.Options{Store: legacy, ServerKey: key, DefaultAccount: "000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, "000000000000", "from-iam-db"); err != nil {
		t.Fatal(err)
	}
	legacy.Close()

	a := start(t, c.config(old, serverKey1))
	if _, err := a.IAM.CreateUser(ctx, "000000000000", "made-on-a"); err != nil {
		t.Fatal(err)
	}
	stop(t, a)
	b := start(t, c.config(t.TempDir(), serverKey1))
	users := b.IAM.ListUsers("000000000000")
	stop(t, b)
	if len(users) != 2 || users[0].Name != "from-iam-db" || users[1].Name != "made-on-a" {
		t.Fatalf("users seen by another node: %+v", users)
	}
	// The import happens once: what the iam.db gains later is not copied
	// over the shared state.
	legacy, err = iam.OpenSQLite(ctx, filepath.Join(old, "iam.db"))
	if err != nil {
		t.Fatal(err)
	}
	if svc, err = iam.Open(ctx, iam.Options{Store: legacy, ServerKey: key, DefaultAccount: "000000000000"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, "000000000000", "late"); err != nil {
		t.Fatal(err)
	}
	legacy.Close()
	c2 := start(t, c.config(old, serverKey1))
	n := len(c2.IAM.ListUsers("000000000000"))
	stop(t, c2)
	if n != 2 {
		t.Fatalf("%d users after a second start, want 2", n)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A node that cannot follow the shared IAM store (a record it cannot
// load) says so on the readiness endpoint, so the load balancer drains it
// instead of letting it authorize with a state the others have left.
func TestReadyReportsIAMNotFollowing(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	a := start(t, c.config(t.TempDir(), serverKey1))
	defer stop(t, a)
	if code, body := get(t, a.URL+app.ReadyPath); code != 200 {
		t.Fatalf("ready: %d %s", code, body)
	}
	other, err := iampg.Open(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	v, _ := other.Version(ctx)
	if _, err := other.Apply(ctx, v, []iam.Record{{Kind: "gadget", Key: "from-a-newer-node", Value: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * iam.FollowInterval); ; time.Sleep(50 * time.Millisecond) {
		code, body := get(t, a.URL+app.ReadyPath)
		if code == 503 && strings.Contains(body, "iam") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready with an unreadable IAM store: %d %s", code, body)
		}
	}
}
