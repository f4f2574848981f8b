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
	"github.com/kinema/kinema/internal/notify"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	fs := flag.NewFlagSet("kinema serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg app.Config
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "where the archive, index and keys live")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:4566", "address to serve every API on")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "base URL clients reach this server at (returned by GetDataEndpoint); default: the listen address")
	fs.StringVar(&cfg.Region, "region", "", "accept only signatures for this region and use it in ARNs (default: any region)")
	fs.BoolVar(&cfg.TLS, "tls", false, "serve HTTPS with a self-signed certificate kept in the data dir")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "key of --tls-cert (PEM)")
	fs.BoolVar(&cfg.HTTP2, "http2", false, "offer HTTP/2 over TLS (off by default: camera SDKs sign headers HTTP/2 drops)")
	fs.DurationVar(&cfg.JanitorInterval, "retention-interval", 30*time.Second, "how often expired fragments are deleted")
	notifyConfig := fs.String("notify-config", "", "notification configuration `FILE` (JSON: SNS topic mappings, webhook secrets, retries; see docs/notifications.md)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "kinema serve: --log-level: %v\n", err)
		return 2
	}
	if *notifyConfig != "" {
		nc, err := notify.LoadConfig(*notifyConfig)
		if err != nil {
			fmt.Fprintf(stderr, "kinema serve: --notify-config: %v\n", err)
			return 2
		}
		cfg.Notify = &nc
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Stdout = stdout
	cfg.AccessKeyID = env("KINEMA_ACCESS_KEY_ID")
	cfg.SecretAccessKey = env("KINEMA_SECRET_ACCESS_KEY")

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kinema serve: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Kinema is serving at %s (access key %s)\n", a.URL, a.Credentials.AccessKeyID)
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
