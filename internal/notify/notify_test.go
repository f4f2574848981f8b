package notify

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

func TestParseTarget(t *testing.T) {
	good := []struct {
		uri       string
		transport Transport
		addr      string
		topic     string
	}{
		{"https://hooks.example.com/kvs?token=1", Webhook, "", ""},
		{"http://127.0.0.1:8080/hook", Webhook, "", ""},
		{"mqtt://127.0.0.1:1883/cams/lobby", MQTT, "127.0.0.1:1883", "cams/lobby"},
		{"mqtt://user:pw@broker/cams", MQTT, "broker:1883", "cams"},
		{"mqtt://[::1]:1884/a", MQTT, "[::1]:1884", "a"},
		{"nats://127.0.0.1:4222/cams.events", NATS, "127.0.0.1:4222", "cams.events"},
		{"NATS://h/x", NATS, "h:4222", "x"},
	}
	for _, c := range good {
		d, err := ParseTarget(c.uri)
		if err != nil || d.Transport != c.transport || d.Addr != c.addr || d.Topic != c.topic || d.Target != c.uri {
			t.Errorf("%s: %+v %v", c.uri, d, err)
		}
	}
	bad := map[string]string{
		"s3://bucket/prefix":    "not supported",
		"ftp://h/x":             "not supported",
		"mqtt://h/":             "names no MQTT topic",
		"mqtt://h/a/+/b":        "wildcard",
		"mqtt://h/a/#":          "wildcard",
		"mqtt://h/a?q=1":        "no query",
		"nats://h/":             "no NATS subject",
		"nats://h/a..b":         "empty token",
		"nats://h/a.*":          "wildcard",
		"nats://u:p@h/a":        "no credentials",
		"http:/nohost":          "no host",
		"mailto:x@example.com":  "no host",
		"http://h:99999/x":      "invalid port",
		"http://%zz/":           "malformed",
		"https://h/x#frag":      "fragment",
		"//h/x":                 "no scheme",
		"http://h/\xff":         "UTF-8",
		"mqtt://h:0/t":          "invalid port",
		"mqtt://h/t\x00":        "malformed",
		"nats://h/a b":          "whitespace",
		"webhook://example.com": "not supported",
	}
	for uri, want := range bad {
		if _, err := ParseTarget(uri); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error about %q", uri, err, want)
		}
	}
}

func TestResolveTopics(t *testing.T) {
	c := Config{Topics: map[string]string{"arn:aws:sns:us-west-2:123456789012:motion": "mqtt://127.0.0.1:1883/motion"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := c.Resolve("arn:aws:sns:us-west-2:123456789012:motion")
	if err != nil || d.Transport != MQTT || d.URI != "arn:aws:sns:us-west-2:123456789012:motion" || d.Topic != "motion" {
		t.Fatalf("%+v %v", d, err)
	}
	for uri, want := range map[string]string{
		"arn:aws:sns:us-west-2:123456789012:other":     "not mapped",
		"arn:aws:sns:us-west-2:123456789012:cams.fifo": "FIFO",
		"arn:aws:s3:::bucket":                          "not an SNS topic ARN",
		"arn:aws:sns:us-west-2:123456789012":           "not an SNS topic ARN",
	} {
		if _, err := c.Resolve(uri); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", uri, err, want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	c, err := LoadConfig(write(`{"topics":{"arn:aws:sns:eu-west-1:111122223333:t":"https://h/x"},
		"webhook_secrets":[{"uri_prefix":"https://h/","secret":"s"}],"max_attempts":3,"min_backoff":"100ms","max_backoff":"2s"}`))
	if err != nil || c.MaxAttempts != 3 || time.Duration(c.MinBackoff) != 100*time.Millisecond || time.Duration(c.AttemptTimeout) != DefaultAttemptTimeout ||
		c.Concurrency != DefaultConcurrency {
		t.Fatalf("%+v %v", c, err)
	}
	for body, want := range map[string]string{
		`{"topic":{}}`:                                        "unknown field",
		`{"topics":{"arn:x":"https://h"}}`:                    "not an SNS topic ARN",
		`{"topics":{"arn:aws:sns:r:1:t":"s3://b/p"}}`:         "not supported",
		`{"topics":{"arn:aws:sns:r:1:t.fifo":"https://h/x"}}`: "FIFO",
		`{"min_backoff":"soon"}`:                              "duration",
		`{"min_backoff":"2s","max_backoff":"1s"}`:             "shorter",
		`{"webhook_secrets":[{"uri_prefix":"https://h"}]}`:    "required",
		`{"max_attempts":-1}`:                                 "negative",
	} {
		if _, err := LoadConfig(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

func TestSecrets(t *testing.T) {
	c := Config{WebhookSecrets: []WebhookSecret{{URIPrefix: "https://h/", Secret: "short"}, {URIPrefix: "https://h/cams/", Secret: "long"}}}
	if c.SecretFor("https://h/cams/1") != "long" || c.SecretFor("https://h/x") != "short" {
		t.Fatal("the longest matching prefix must win")
	}
	if c.SecretFor("https://other/") != "" {
		t.Fatal("no key, no entry: no secret")
	}
	dir := t.TempDir()
	if err := c.LoadKey(dir); err != nil {
		t.Fatal(err)
	}
	a := c.SecretFor("https://other/a")
	var again Config
	again.LoadKey(dir)
	if a == "" || again.SecretFor("https://other/a") != a || again.SecretFor("https://other/b") == a {
		t.Fatal("derived secrets must be stable per URL across restarts and differ between URLs")
	}
	if st, _ := os.Stat(filepath.Join(dir, keyFile)); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode())
	}
}

func TestMessageAndSignature(t *testing.T) {
	st := &stream.Stream{Region: "us-west-2", Account: "123456789012", Name: "cam", Created: time.UnixMilli(1613732218179)}
	e := archive.OutboxEntry{Fragment: 42, ProducerMs: 1_700_000_000_123, ServerMs: 1_700_000_000_456, Tags: []stream.Tag{
		{Name: stream.TagNotification}, {Name: "motion", Value: "a"}, {Name: stream.TagImagePrefix, Value: "p"}, {Name: "motion", Value: "b"}}}
	b := marshal(NewMessage(st, e))
	var m map[string]any
	json.Unmarshal(b, &m)
	if len(m) != 6 || m["StreamArn"] != st.ARN() || m["FragmentNumber"] != e.Fragment.String() ||
		m["FragmentStartProducerTimestamp"] != float64(1_700_000_000_123) || m["NotificationType"] != "PERSISTED" ||
		m["NotificationPayload"].(map[string]any)["motion"] != "b" || len(m["NotificationPayload"].(map[string]any)) != 1 {
		t.Fatalf("message %s", b)
	}
	id := MessageID(e)
	if len(id) != 36 || id != MessageID(archive.OutboxEntry{Fragment: 42, ID: 9}) || id == MessageID(archive.OutboxEntry{Fragment: 43}) {
		t.Fatalf("message id %s: must depend on the fragment only", id)
	}
	now := time.Unix(1_700_000_000, 0)
	sig := Sign("secret", now.Unix(), id, b)
	if err := Verify("secret", "1700000000", id, sig, b, 5*time.Minute, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"wrong secret":   Verify("other", "1700000000", id, sig, b, 5*time.Minute, now),
		"other body":     Verify("secret", "1700000000", id, sig, append(b, ' '), 5*time.Minute, now),
		"other id":       Verify("secret", "1700000000", "x", sig, b, 5*time.Minute, now),
		"other time":     Verify("secret", "1700000001", id, sig, b, 5*time.Minute, now),
		"replayed later": Verify("secret", "1700000000", id, sig, b, 5*time.Minute, now.Add(6*time.Minute)),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := Verify("secret", "1700000000", id, sig, b, 5*time.Minute, now.Add(6*time.Minute)); !errors.Is(err, ErrStale) {
		t.Fatalf("stale: %v", err)
	}
}

// FuzzParseTarget: a Uri is untrusted input. Parsing never panics, and a
// destination it accepts is consistent and parses the same again.
func FuzzParseTarget(f *testing.F) {
	c := Config{Topics: map[string]string{"arn:aws:sns:us-west-2:123456789012:motion": "mqtt://127.0.0.1/m"}}
	f.Fuzz(func(t *testing.T, uri string) {
		d, err := c.Resolve(uri)
		if err != nil {
			return
		}
		switch d.Transport {
		case Webhook:
		case MQTT, NATS:
			if d.Topic == "" || d.Addr == "" {
				t.Fatalf("%q: %+v", uri, d)
			}
		default:
			t.Fatalf("%q: transport %q", uri, d.Transport)
		}
		again, err := ParseTarget(d.Target)
		if err != nil || again.Transport != d.Transport || again.Topic != d.Topic || again.Addr != d.Addr {
			t.Fatalf("%q parses differently the second time: %+v %v", uri, again, err)
		}
	})
}
