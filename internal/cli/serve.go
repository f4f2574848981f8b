package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/limits"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/s3conf"
)

// serveOptions is what kinema serve's flags, its configuration file and
// the environment fill in.
type serveOptions struct {
	cfg          app.Config
	lim          limits.Config
	notifyConfig string
	logLevel     string
	configFile   string
}

// serveEnvFlags are the flags whose default comes from the environment: a
// variable that is set wins over the configuration file.
var serveEnvFlags = map[string]string{"index": "KINEMA_INDEX", "media": "KINEMA_MEDIA", "node-id": "KINEMA_NODE_ID", "nats": "KINEMA_NATS"}

// secrets are the settings kept off the command line: from the
// environment, else the configuration file.
func (o *serveOptions) secrets() []fileSecret {
	return []fileSecret{
		{"access-key-id", "KINEMA_ACCESS_KEY_ID", "the root access key id (generated on first start when unset)", &o.cfg.AccessKeyID},
		{"secret-access-key", "KINEMA_SECRET_ACCESS_KEY", "the root secret access key", &o.cfg.SecretAccessKey},
		{"server-key", "KINEMA_SERVER_KEY", "64 hex digits that encrypt stored secrets and seal session tokens (default: the data dir's server.key)", &o.cfg.ServerKey},
		{"s3-access-key-id", "KINEMA_S3_ACCESS_KEY_ID", "access key id for the S3 store (else AWS_ACCESS_KEY_ID)", &o.cfg.S3.AccessKeyID},
		{"s3-secret-access-key", "KINEMA_S3_SECRET_ACCESS_KEY", "secret access key for the S3 store (else AWS_SECRET_ACCESS_KEY)", &o.cfg.S3.SecretAccessKey},
	}
}

// serveFlags defines kinema serve's flags on o; env gives the defaults
// that come from the environment.
func serveFlags(o *serveOptions, env func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("kinema serve", flag.ContinueOnError)
	cfg := &o.cfg
	fs.StringVar(&o.configFile, "config", "", "read options from this YAML `FILE`: keys are the flags' names, the command line wins (see docs/configuration.md)")
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "where the archive, index and keys live")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:4566", "address to serve every API on")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "base URL clients reach this server at (returned by GetDataEndpoint); default: the listen address")
	fs.StringVar(&cfg.Region, "region", "", "accept only signatures for this region and use it in ARNs (default: any region)")
	fs.BoolVar(&cfg.TLS, "tls", false, "serve HTTPS with a self-signed certificate kept in the data dir")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "key of --tls-cert (PEM)")
	fs.BoolVar(&cfg.HTTP2, "http2", false, "offer HTTP/2 over TLS (off by default: camera SDKs sign headers HTTP/2 drops)")
	fs.DurationVar(&cfg.JanitorInterval, "retention-interval", 30*time.Second, "how often expired fragments are deleted")
	fs.StringVar(&cfg.IoTListen, "iot-listen", "", "serve the device credentials endpoint (mutual TLS, GET /role-aliases/{alias}/credentials) on this `host:port`")
	o.lim = limits.Defaults()
	lim := &o.lim
	fs.Float64Var(&lim.KeyRate, "key-rate", lim.KeyRate, "requests per second per access key (0: no limit)")
	fs.IntVar(&lim.KeyBurst, "key-burst", lim.KeyBurst, "burst of --key-rate")
	fs.IntVar(&lim.KeyConnections, "key-connections", lim.KeyConnections, "concurrent PutMedia/GetMedia connections per access key (0: no limit)")
	fs.Float64Var(&lim.StreamRate, "stream-rate", lim.StreamRate, "calls per second per stream and operation (0: no limit)")
	fs.Float64Var(&lim.MediaRate, "media-rate", lim.MediaRate, "PutMedia/GetMedia/GetClip calls per second per stream (0: no limit)")
	fs.IntVar(&lim.StreamReaders, "stream-readers", lim.StreamReaders, "concurrent GetMedia connections per stream (0: no limit)")
	fs.DurationVar(&lim.IdleTimeout, "idle-timeout", lim.IdleTimeout, "cut a request whose body or response makes no progress for this long")
	cfg.RateLimits = lim
	fs.IntVar(&cfg.MaxStreamsPerAccount, "max-streams-per-account", 10000, "live streams an account may have (0: no limit)")
	fs.StringVar(&cfg.FFmpeg, "ffmpeg", "ffmpeg", "the ffmpeg program image operations run (a path, or a name looked up in PATH)")
	fs.StringVar(&cfg.Index, "index", env("KINEMA_INDEX"), "index `URL`: postgres://user:password@host:5432/db to share one PostgreSQL database between nodes (default $KINEMA_INDEX, else the embedded SQLite index in the data dir)")
	fs.StringVar(&cfg.Media, "media", env("KINEMA_MEDIA"), "media store `URL`: s3://bucket/prefix on the --s3-endpoint store (default $KINEMA_MEDIA, else segment files in the data dir)")
	fs.DurationVar(&cfg.MediaPutInterval, "media-put-interval", 200*time.Millisecond, "with --media s3://, the least time between two PUTs: fewer, larger objects for up to twice this much more PERSISTED latency")
	fs.StringVar(&cfg.S3.Endpoint, "s3-endpoint", "", "S3-compatible endpoint for --media s3:// and s3:// image destinations (default: AWS); credentials from KINEMA_S3_ACCESS_KEY_ID and KINEMA_S3_SECRET_ACCESS_KEY (or the --config file's s3-access-key-id and s3-secret-access-key), else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	fs.StringVar(&cfg.S3.Region, "s3-region", "us-east-1", "region to sign S3 requests for")
	fs.BoolVar(&cfg.S3.PathStyle, "s3-path-style", true, "address buckets in the path (most self-hosted stores) rather than the host name")
	fs.StringVar(&cfg.NodeID, "node-id", env("KINEMA_NODE_ID"), "this node's name among nodes sharing --index postgres:// and --media s3:// (default $KINEMA_NODE_ID, else host name and listen port); keep it across restarts")
	fs.StringVar(&cfg.NATS, "nats", env("KINEMA_NATS"), "NATS server `URL` (nats://host:4222) nodes announce persisted fragments on, so that live readers on every node follow every node's streams (default $KINEMA_NATS)")
	fs.StringVar(&cfg.NATSSubject, "nats-subject", "kinema.persisted", "NATS subject of those announcements (one per cluster sharing a NATS server)")
	fs.DurationVar(&cfg.S3.Timeout, "s3-timeout", s3conf.DefaultTimeout, "give up on an S3 call of the media store (retries included) after this long: ingest answers ERROR 5001 instead of waiting on a stalled store (0: wait)")
	fs.StringVar(&o.notifyConfig, "notify-config", "", "notification configuration `FILE` (JSON: SNS topic mappings, webhook secrets, retries; see docs/notifications.md)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return fs
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	var o serveOptions
	fs := serveFlags(&o, env)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	secrets := o.secrets()
	for _, s := range secrets {
		*s.dst = env(s.env)
	}
	if o.configFile != "" {
		settings, err := readConfigFile(o.configFile)
		if err == nil {
			envSet := map[string]bool{}
			for name, v := range serveEnvFlags {
				envSet[name] = env(v) != ""
			}
			err = applyConfig(o.configFile, settings, fs, secrets, flagsSet(fs), envSet, env)
		}
		if err != nil {
			fmt.Fprintf(stderr, "kinema serve: %v\n", err)
			return 2
		}
	}
	cfg := o.cfg
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "kinema serve: --log-level: %v\n", err)
		return 2
	}
	if o.notifyConfig != "" {
		nc, err := notify.LoadConfig(o.notifyConfig)
		if err != nil {
			fmt.Fprintf(stderr, "kinema serve: --notify-config: %v\n", err)
			return 2
		}
		cfg.Notify = &nc
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Stdout = stdout

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kinema serve: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Kinema is serving at %s (access key %s)\n", a.URL, a.Credentials.AccessKeyID)
	if a.IoTURL != "" {
		fmt.Fprintf(stdout, "Device credentials endpoint at %s (devices trust it with %s)\n", a.IoTURL, a.DeviceCAPath)
	}
	done := make(chan error, 1)
	go func() { done <- a.Wait() }()
	select {
	case <-ctx.Done():
	case err := <-done:
		if err != nil {
			fmt.Fprintf(stderr, "kinema serve: %v\n", err)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(stderr, "kinema serve: shutdown: %v\n", err)
		return 1
	}
	return 0
}
