package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// loadServe parses args and the configuration text (when not empty) as
// kinema serve does, with env as the environment.
func loadServe(t *testing.T, config string, env map[string]string, args ...string) (*serveOptions, error) {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	var o serveOptions
	fs := serveFlags(&o, getenv)
	fs.SetOutput(new(bytes.Buffer))
	file := filepath.Join(t.TempDir(), "kinema.yaml")
	if config != "" {
		if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", file}, args...)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	secrets := o.secrets()
	for _, s := range secrets {
		*s.dst = getenv(s.env)
	}
	if config == "" {
		return &o, nil
	}
	settings, err := readConfigFile(file)
	if err != nil {
		return nil, err
	}
	envSet := map[string]bool{}
	for name, v := range serveEnvFlags {
		envSet[name] = getenv(v) != ""
	}
	return &o, applyConfig(file, settings, fs, secrets, flagsSet(fs), envSet, getenv)
}

// Keys are flag names; mappings join with "-"; values parse as the flag
// parses them (strings, numbers, bools, durations); secrets come from the
// file when the environment has none.
func TestConfigMapsKeysToFlags(t *testing.T) {
	o, err := loadServe(t, `
# a node on PostgreSQL and S3
listen: 0.0.0.0:4566
data-dir: /var/lib/kinema
region: eu-west-1
tls: true
retention-interval: 1m30s
key-rate: 2.5
key-burst: 40
index: postgres://kinema@db:5432/kinema
media: s3://video/kinema
media-put-interval: 250ms
s3:
  endpoint: http://minio:9000
  region: "eu-central-1"
  path-style: false
  access-key-id: AKIDFROMFILE
  secret-access-key: secretfromfile
server-key: "`+strings.Repeat("ab", 32)+`"
log-level: debug
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	want := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, "0.0.0.0:4566"},
		{"data-dir", c.DataDir, "/var/lib/kinema"},
		{"region", c.Region, "eu-west-1"},
		{"tls", c.TLS, true},
		{"retention-interval", c.JanitorInterval, 90 * time.Second},
		{"key-rate", o.lim.KeyRate, 2.5},
		{"key-burst", o.lim.KeyBurst, 40},
		{"rate limits wired", c.RateLimits.KeyBurst, 40},
		{"index", c.Index, "postgres://kinema@db:5432/kinema"},
		{"media", c.Media, "s3://video/kinema"},
		{"media-put-interval", c.MediaPutInterval, 250 * time.Millisecond},
		{"s3.endpoint", c.S3.Endpoint, "http://minio:9000"},
		{"s3.region", c.S3.Region, "eu-central-1"},
		{"s3.path-style", c.S3.PathStyle, false},
		{"s3.access-key-id", c.S3.AccessKeyID, "AKIDFROMFILE"},
		{"s3.secret-access-key", c.S3.SecretAccessKey, "secretfromfile"},
		{"server-key", c.ServerKey, strings.Repeat("ab", 32)},
		{"log-level", o.logLevel, "debug"},
		{"max-streams-per-account default", c.MaxStreamsPerAccount, 10000},
	}
	for _, w := range want {
		if w.got != w.want {
			t.Errorf("%s: %v, want %v", w.name, w.got, w.want)
		}
	}
}

// The command line wins over the environment, which wins over the file,
// which wins over the defaults.
func TestConfigPrecedence(t *testing.T) {
	file := `
listen: 127.0.0.1:1111
region: eu-west-1
index: postgres://file/db
media: s3://file/p
access-key-id: AKIDFILE
secret-access-key: filesecret
`
	env := map[string]string{"KINEMA_INDEX": "postgres://env/db", "KINEMA_ACCESS_KEY_ID": "AKIDENV"}
	o, err := loadServe(t, file, env, "--listen", "127.0.0.1:2222", "--media", "s3://flag/p")
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	for _, w := range []struct{ what, got, want string }{
		{"flag over file", c.Listen, "127.0.0.1:2222"},
		{"flag over file (env-backed flag)", c.Media, "s3://flag/p"},
		{"file over default", c.Region, "eu-west-1"},
		{"environment over file", c.Index, "postgres://env/db"},
		{"secret: environment over file", c.AccessKeyID, "AKIDENV"},
		{"secret: file without environment", c.SecretAccessKey, "filesecret"},
		{"default", c.DataDir, "./data"},
	} {
		if w.got != w.want {
			t.Errorf("%s: %q, want %q", w.what, w.got, w.want)
		}
	}
	// The same key nested or flat is the same flag.
	o, err = loadServe(t, "s3-region: a\nmedia-put-interval: 1s\n", nil)
	if err != nil || o.cfg.S3.Region != "a" || o.cfg.MediaPutInterval != time.Second {
		t.Fatalf("flat keys: %+v %v", o.cfg.S3, err)
	}
	// An empty file, or one of comments only, sets nothing.
	for _, empty := range []string{"\n", "# nothing yet\n", "---\n"} {
		if o, err := loadServe(t, empty, nil); err != nil || o.cfg.Listen != "127.0.0.1:4566" {
			t.Errorf("%q: %v", empty, err)
		}
	}
}

// Every mistake is an error naming the file, the line and the key; none is
// ignored.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, config string
		want         []string
	}{
		{"unknown key", "listen: x:1\nregoin: eu-west-1\n", []string{":2:", "unknown option regoin", "--regoin"}},
		{"unknown nested key", "s3:\n  endpoint: http://x\n  bukket: b\n", []string{":3:", "unknown option s3.bukket", "--s3-bukket"}},
		{"bad duration", "retention-interval: 30\n", []string{":1:", "retention-interval", `"30"`, "want a duration"}},
		{"bad number", "key-burst: lots\n", []string{":1:", "key-burst", `"lots"`, "whole number"}},
		{"bad float", "key-rate: fast\n", []string{":1:", "key-rate", "want a number"}},
		{"bad bool", "tls: yes please\n", []string{":1:", "--tls"}},
		{"set twice", "s3-region: a\ns3:\n  region: b\n", []string{":3:", "s3.region sets --s3-region", "s3-region (line 1)"}},
		{"same key twice", "region: a\nregion: b\n", []string{":2:", "region (line 1)"}},
		{"list", "listen:\n  - a:1\n  - b:2\n", []string{":2:", "listen: a list"}},
		{"null", "region:\n", []string{":1:", "region has no value"}},
		{"empty mapping", "s3: {}\n", []string{":1:", "s3: an empty mapping"}},
		{"config in config", "config: other.yaml\n", []string{":1:", "cannot name another"}},
		{"not a mapping", "- listen: x\n", []string{":1:", "must be a mapping"}},
		{"scalar document", "hello\n", []string{"must be a mapping"}},
		{"bad YAML", "listen: [unclosed\n", []string{"not valid YAML"}},
		{"two documents", "listen: a:1\n---\nregion: b\n", []string{"more than one YAML document"}},
		{"number key", "s3:\n  ? [a, b]\n  : c\n", []string{"not an option name"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadServe(t, c.config, nil)
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("err %v, want a configuration error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "kinema.yaml") {
				t.Errorf("%q does not name the file", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not contain %q", msg, w)
				}
			}
		})
	}
}

// runServe exits 2 on a bad configuration, with the reason on stderr,
// before it opens anything.
func TestServeConfigErrorExits2(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kinema.yaml")
	os.WriteFile(file, []byte("data-dir: "+dir+"\nlisten: 127.0.0.1:0\nmax-streams: 5\n"), 0o600)
	var stdout, stderr bytes.Buffer
	code := runServe(t.Context(), []string{"--config", file}, &stdout, &stderr, func(string) string { return "" })
	if code != 2 || !strings.Contains(stderr.String(), file+":3: unknown option max-streams") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	code = runServe(t.Context(), []string{"--config", filepath.Join(dir, "missing.yaml")}, &stdout, &stderr, func(string) string { return "" })
	if code != 2 || !strings.Contains(stderr.String(), "missing.yaml") {
		t.Fatalf("missing file: exit %d, stderr %q", code, stderr.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a refused configuration created files: %v", entries)
	}
}

// The flags that take their default from the environment say so in
// serveEnvFlags, which is what lets a set variable win over the file.
func TestServeEnvFlags(t *testing.T) {
	env := map[string]string{}
	for _, v := range serveEnvFlags {
		env[v] = "from-" + v
	}
	var o serveOptions
	fs := serveFlags(&o, func(k string) string { return env[k] })
	fs.VisitAll(func(f *flag.Flag) {
		v, listed := serveEnvFlags[f.Name]
		if fromEnv := strings.HasPrefix(f.DefValue, "from-"); fromEnv != listed || listed && f.DefValue != "from-"+v {
			t.Errorf("--%s: default %q, serveEnvFlags %q", f.Name, f.DefValue, v)
		}
	})
}
