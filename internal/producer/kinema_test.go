package producer_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/producer"
)

const (
	itAccessKey = "AKIAKINEMAPRODUCERIT"
	itSecretKey = "producer-integration-secret-key-0123456789"
)

// startKinema runs the real server in-process on a random port.
func startKinema(t *testing.T) *app.App {
	t.Helper()
	a, err := app.Start(context.Background(), app.Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", AccessKeyID: itAccessKey, SecretAccessKey: itSecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return a
}

func itConfig(a *app.App, stream string) producer.Config {
	return producer.Config{
		Endpoint: a.URL, StreamName: stream, AccessKeyID: itAccessKey, SecretAccessKey: itSecretKey,
		CreateStream: true, RetentionHours: 24,
	}
}

// listFragments asks the server's ListFragments (through the AWS SDK) for
// every fragment of the stream.
func listFragments(t *testing.T, a *app.App, stream string) []amtypes.Fragment {
	t.Helper()
	ctx := context.Background()
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: itAccessKey, SecretAccessKey: itSecretKey}, nil
	})
	kv := kinesisvideo.New(kinesisvideo.Options{Region: "us-east-1", BaseEndpoint: aws.String(a.URL), Credentials: creds})
	ep, err := kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{StreamName: aws.String(stream), APIName: types.APINameListFragments})
	if err != nil {
		t.Fatal(err)
	}
	am := kinesisvideoarchivedmedia.New(kinesisvideoarchivedmedia.Options{Region: "us-east-1", BaseEndpoint: ep.DataEndpoint, Credentials: creds})
	out, err := am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Fragments
}

func TestPutThroughKinema(t *testing.T) {
	file := producer.MediaFileForTest(t, "av.mp4")
	a := startKinema(t)
	m, err := producer.OpenFile(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	plans := m.Fragments(0)

	cfg := itConfig(a, "it-cam")
	cfg.FragmentTags = func(i int) []producer.Tag {
		return []producer.Tag{{Name: producer.TagNotification}, {Name: "INDEX", Value: strings.Repeat("i", i+1)}}
	}
	cfg.StartTime = time.Now().Add(-time.Minute)
	res, err := producer.Put(context.Background(), cfg, plans, m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if res.Done() != 3 || res.Counts[producer.AckPersisted] != 3 || res.Counts[producer.AckBuffering] != 3 || res.Error != nil {
		t.Fatalf("done %d, counts %v", res.Done(), res.Counts)
	}
	for i, f := range res.Fragments {
		if !f.Persisted || f.PersistedLatency <= 0 || f.Number == "" {
			t.Errorf("fragment %d: %+v", i, f)
		}
	}
	frags := listFragments(t, a, "it-cam")
	if len(frags) != 3 {
		t.Fatalf("ListFragments: %d fragments", len(frags))
	}
	for _, f := range frags {
		ok := false
		for _, r := range res.Fragments {
			if aws.ToString(f.FragmentNumber) == r.Number && f.ProducerTimestamp.UnixMilli() == int64(r.Timecode) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("listed fragment %s at %v matches no acked one", aws.ToString(f.FragmentNumber), f.ProducerTimestamp)
		}
	}

	// The variants: RELATIVE timecodes, no end-of-fragment tags, Loop, and
	// realtime pacing, on the same stream (timestamps moving on).
	cfg.StartTime = time.Now()
	cfg.TimecodeType, cfg.NoEndOfFragmentTags, cfg.Loop, cfg.Realtime = producer.TimecodeRelative, true, 2, true
	start := time.Now()
	res, err = producer.Put(context.Background(), cfg, plans, m.Header)
	if err != nil || res.Done() != 6 {
		t.Fatalf("%v: done %d, counts %v", err, res.Done(), res.Counts)
	}
	if el := time.Since(start); el < 5800*time.Millisecond {
		t.Errorf("realtime put of 2 x 3 s took %v", el)
	}
	if n := len(listFragments(t, a, "it-cam")); n != 9 {
		t.Errorf("ListFragments: %d fragments after the second put, want 9", n)
	}
}

func TestPutAudioAndBadInputThroughKinema(t *testing.T) {
	file := producer.MediaFileForTest(t, "audio.m4a")
	a := startKinema(t)
	m, err := producer.OpenFile(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := itConfig(a, "it-audio")
	res, err := producer.Put(context.Background(), cfg, m.Fragments(1000), m.Header)
	if err != nil || res.Done() != 3 {
		t.Fatalf("%v: %+v", err, res.Counts)
	}

	// A body cut in the middle of its second fragment's first block.
	cfg.StartTime = time.Now().Add(time.Minute)
	body, err := producer.MarshalBody(cfg, m.Fragments(1000), m.Header)
	if err != nil {
		t.Fatal(err)
	}
	cluster := []byte{0x1f, 0x43, 0xb6, 0x75}
	first := bytes.Index(body, cluster)
	cut := first + 4 + bytes.Index(body[first+4:], cluster) + 30
	raw, err := producer.PutRaw(context.Background(), cfg, bytes.NewReader(body[:cut]), nil)
	if err != nil {
		t.Fatal(err)
	}
	if raw.StatusCode != 200 || raw.Count(producer.AckPersisted) != 1 || raw.Count(producer.AckError) != 1 {
		t.Fatalf("status %d, acks %+v", raw.StatusCode, raw.Acks)
	}
	if e := raw.Acks[len(raw.Acks)-1]; e.EventType != producer.AckError || e.ErrorID != 4006 {
		t.Errorf("last ack %+v, want ERROR 4006", e)
	}
}

func TestRunPutThroughKinema(t *testing.T) {
	file := producer.MediaFileForTest(t, "av.mp4")
	a := startKinema(t)
	env := map[string]string{"AWS_ACCESS_KEY_ID": itAccessKey, "AWS_SECRET_ACCESS_KEY": itSecretKey, "KINEMA_ENDPOINT": a.URL}
	var out, errOut bytes.Buffer
	code := producer.RunPut(context.Background(), []string{"--stream", "cli", "--create", "--fast", "--images", "--image-prefix", "cam/", file},
		&out, &errOut, func(k string) string { return env[k] })
	if code != 0 || !strings.Contains(out.String(), "3 of 3 fragments persisted") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	code = producer.RunPut(context.Background(), []string{"--stream", "absent", "--fast", file},
		&out, &errOut, func(k string) string { return env[k] })
	if code != 1 || !strings.Contains(errOut.String(), "does not exist") {
		t.Errorf("absent stream: exit %d, %s", code, errOut.String())
	}
}
