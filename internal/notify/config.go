package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the notification part of Kinema's configuration
// (`kinema serve --notify-config FILE`, JSON; docs/notifications.md).
type Config struct {
	// Topics maps SNS topic ARNs to target URIs, so that configurations
	// written for KVS (whose Uri is a topic ARN) work unchanged.
	Topics map[string]string `json:"topics"`
	// WebhookSecrets gives webhooks their signing secrets: the entry with
	// the longest URIPrefix that the webhook URL starts with wins. A
	// webhook without an entry signs with a secret derived from the
	// server's notification key (SecretFor).
	WebhookSecrets []WebhookSecret `json:"webhook_secrets"`
	// MaxAttempts is how many attempts a message gets before it is DEAD.
	MaxAttempts int `json:"max_attempts"`
	// MinBackoff and MaxBackoff bound the wait after a failed attempt:
	// MinBackoff·2^(attempt-1), capped at MaxBackoff, with jitter.
	MinBackoff Duration `json:"min_backoff"`
	MaxBackoff Duration `json:"max_backoff"`
	// AttemptTimeout bounds one attempt (connect, send, acknowledgement).
	AttemptTimeout Duration `json:"attempt_timeout"`
	// Concurrency bounds attempts in flight across all streams.
	Concurrency int `json:"concurrency"`

	// key derives the secrets of webhooks without an entry; set by
	// LoadKey.
	key []byte
}

// WebhookSecret is one webhook signing secret.
type WebhookSecret struct {
	URIPrefix string `json:"uri_prefix"`
	Secret    string `json:"secret"`
}

// Duration is a time.Duration written as "1.5s", "5m" in JSON.
type Duration time.Duration

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"1s\" or \"5m\": %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: %v", s, err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Defaults.
const (
	DefaultMaxAttempts    = 10
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultAttemptTimeout = 10 * time.Second
	DefaultConcurrency    = 256
)

// LoadConfig reads a configuration file and checks it.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}

// Validate checks every mapping and secret and fills in defaults.
func (c *Config) Validate() error {
	for arn, target := range c.Topics {
		if _, err := ParseTopicARN(arn); err != nil {
			return fmt.Errorf("topics: %v", err)
		}
		if strings.HasSuffix(arn, ".fifo") {
			return fmt.Errorf("topics: %s is a FIFO topic; KVS notifies standard topics only", arn)
		}
		if _, err := ParseTarget(target); err != nil {
			return fmt.Errorf("topics[%s]: %v", arn, err)
		}
	}
	for i, w := range c.WebhookSecrets {
		if w.URIPrefix == "" || w.Secret == "" {
			return fmt.Errorf("webhook_secrets[%d]: uri_prefix and secret are both required", i)
		}
	}
	if c.MaxAttempts < 0 || c.Concurrency < 0 {
		return errors.New("max_attempts and concurrency cannot be negative")
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = Duration(DefaultMinBackoff)
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = Duration(DefaultMaxBackoff)
	}
	if c.MaxBackoff < c.MinBackoff {
		return errors.New("max_backoff is shorter than min_backoff")
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = Duration(DefaultAttemptTimeout)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	return nil
}

// Resolve turns a configured Uri into a destination: a topic ARN through
// Topics, anything else as a target URI.
func (c *Config) Resolve(uri string) (Destination, error) {
	if !isARN(uri) {
		return ParseTarget(uri)
	}
	if _, err := ParseTopicARN(uri); err != nil {
		return Destination{}, err
	}
	if strings.HasSuffix(uri, ".fifo") {
		return Destination{}, fmt.Errorf("%s is a FIFO topic; notifications go to standard topics only", uri)
	}
	target, ok := c.Topics[uri]
	if !ok {
		return Destination{}, fmt.Errorf("SNS topic %s is not mapped to a destination in Kinema's notification configuration (topics in --notify-config; see docs/notifications.md)", uri)
	}
	d, err := ParseTarget(target)
	if err != nil {
		return Destination{}, err
	}
	d.URI = uri
	return d, nil
}

// keyFile holds the key that webhook secrets without an entry are derived
// from; made on first start, mode 0600.
const keyFile = "notify.key"

// LoadKey reads (creating on first use) the data dir's notification key.
func (c *Config) LoadKey(dataDir string) error {
	path := filepath.Join(dataDir, keyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k := make([]byte, 32)
		rand.Read(k)
		b = []byte(hex.EncodeToString(k))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 16 {
		return fmt.Errorf("%s is not a hex key of at least 16 bytes", path)
	}
	c.key = key
	return nil
}

// UseKey sets the notification key instead of LoadKey: nodes of a cluster
// derive it from their shared server key, so each signs a webhook with
// the secret its receiver was given.
func (c *Config) UseKey(key []byte) { c.key = key }

// SecretFor returns the signing secret of a webhook target URL.
func (c *Config) SecretFor(target string) string {
	best := -1
	for i, w := range c.WebhookSecrets {
		if strings.HasPrefix(target, w.URIPrefix) && (best < 0 || len(w.URIPrefix) > len(c.WebhookSecrets[best].URIPrefix)) {
			best = i
		}
	}
	if best >= 0 {
		return c.WebhookSecrets[best].Secret
	}
	if len(c.key) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("kinema webhook secret\x00" + target))
	return hex.EncodeToString(m.Sum(nil))
}
