// Package app wires Kinema together and owns the start and stop order:
// index, media store and archive recovery first, then the janitor and the
// notifier, then the HTTP listener; on stop, the reverse. It is the one package that imports
// every other.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/localfs"
	"github.com/kinema/kinema/internal/archive/sqlindex"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/ingest"
	"github.com/kinema/kinema/internal/kvsapi"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/playback"
	"github.com/kinema/kinema/internal/sigv4"
	"github.com/kinema/kinema/internal/tlsutil"
)

// Config is everything `kinema serve` can be told.
type Config struct {
	DataDir   string
	Listen    string // host:port
	PublicURL string // what GetDataEndpoint returns; default from the listener
	Region    string // "" accepts any region
	Account   string

	TLS     bool   // serve HTTPS with a self-signed certificate made in the data dir
	TLSCert string // or with this certificate and key
	TLSKey  string
	HTTP2   bool // offer h2 in ALPN (off: the producer SDK signs hop-by-hop headers HTTP/2 drops)

	AccessKeyID, SecretAccessKey string // root key; generated when empty

	JanitorInterval time.Duration
	SegmentBytes    int64
	Limits          *ingest.Limits
	GetMediaIdle    time.Duration
	// Notify configures notification delivery (topic mappings, webhook
	// secrets, retries); nil means the defaults.
	Notify *notify.Config

	Logger *slog.Logger
	Stdout io.Writer // where first-start messages go
	// SignatureClock replaces the clock signatures are checked against
	// (tests replay recorded, signed traffic with it). Nil: time.Now.
	SignatureClock func() time.Time
}

// App is a running Kinema server.
type App struct {
	URL         string // base URL of the listener
	CAPath      string // CA file clients should trust, with self-signed TLS
	Credentials Credentials
	Archive     *archive.Archive
	Notifier    *notify.Notifier

	log      *slog.Logger
	srv      *http.Server
	ln       net.Listener
	index    *sqlindex.Index
	media    *localfs.Store
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	serveErr chan error
}

// Start opens the data dir, recovers the archive and starts serving.
func Start(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "./data"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:4566"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, err
	}
	creds, err := rootCredentials(cfg.DataDir, cfg.AccessKeyID, cfg.SecretAccessKey, cfg.Stdout)
	if err != nil {
		return nil, err
	}
	a := &App{log: cfg.Logger, Credentials: creds, serveErr: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			a.closeStores()
		}
	}()

	if a.index, err = sqlindex.Open(ctx, filepath.Join(cfg.DataDir, "index.db")); err != nil {
		return nil, err
	}
	if a.media, err = localfs.Open(filepath.Join(cfg.DataDir, "media")); err != nil {
		return nil, err
	}
	if a.Archive, err = archive.Open(ctx, a.index, a.media, archive.Options{SegmentBytes: cfg.SegmentBytes, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	janitor := archive.NewJanitor(a.Archive, cfg.JanitorInterval)
	var ncfg notify.Config
	if cfg.Notify != nil {
		ncfg = *cfg.Notify
	}
	if err := ncfg.Validate(); err != nil {
		return nil, fmt.Errorf("notification configuration: %w", err)
	}
	if err := ncfg.LoadKey(cfg.DataDir); err != nil {
		return nil, err
	}
	a.Notifier = notify.New(ncfg, notify.Options{Index: a.index, Wake: a.Archive.WatchTriggers(), Logger: cfg.Logger})
	a.wg.Add(3)
	go func() { defer a.wg.Done(); a.Archive.Run(runCtx) }()
	go func() { defer a.wg.Done(); janitor.Run(runCtx) }()
	go func() { defer a.wg.Done(); a.Notifier.Run(runCtx) }()

	ing := ingest.NewService(a.Archive, cfg.Logger)
	if cfg.Limits != nil {
		ing.Limits = *cfg.Limits
	}

	var tlsConfig *tls.Config
	switch {
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		cert, err := tlsutil.LoadKeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		tlsConfig = tlsutil.ServerConfig(cert, cfg.HTTP2)
	case cfg.TLS:
		host, _, _ := net.SplitHostPort(cfg.Listen)
		cert, caPath, err := tlsutil.SelfSigned(filepath.Join(cfg.DataDir, "tls"), []string{host})
		if err != nil {
			return nil, err
		}
		a.CAPath = caPath
		tlsConfig = tlsutil.ServerConfig(cert, cfg.HTTP2)
	}

	if a.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, err
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	a.URL = scheme + "://" + a.ln.Addr().String()
	publicURL := cfg.PublicURL
	if publicURL == "" {
		if host, _, _ := net.SplitHostPort(cfg.Listen); host != "" && !net.ParseIP(host).IsUnspecified() {
			publicURL = a.URL
		}
	}

	keys, err := playback.LoadKeyring(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	api := kvsapi.New(kvsapi.Config{
		Archive: a.Archive, Ingest: ing, Janitor: janitor, Notify: a.Notifier,
		Playback:     &playback.Server{Archive: a.Archive, Keys: keys, Log: cfg.Logger},
		Verifier:     &sigv4.Verifier{Service: "kinesisvideo", Region: cfg.Region, Credentials: creds, Now: cfg.SignatureClock},
		Account:      cfg.Account,
		Region:       cfg.Region,
		PublicURL:    publicURL,
		GetMediaIdle: cfg.GetMediaIdle,
		Logger:       cfg.Logger,
	})
	api.SetClipMeta(&clipmeta.Handler{Store: a.index, StreamExists: api.StreamExists, SessionURL: api.ClipSessionURL, Logger: cfg.Logger})
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(cfg.HTTP2 && tlsConfig != nil)
	a.srv = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second, // slow-loris guard; bodies have their own idle limits
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsConfig,
		Protocols:         &protocols,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	ln := a.ln
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	go func() { a.serveErr <- a.srv.Serve(ln) }()
	cfg.Logger.Info("kinema serving", "url", a.URL, "data_dir", cfg.DataDir, "region", cfg.Region)
	if a.CAPath != "" {
		fmt.Fprintf(cfg.Stdout, "HTTPS with a self-signed certificate; clients trust it with the CA file %s\n", a.CAPath)
	}
	ok = true
	return a, nil
}

// Wait blocks until the server stops serving.
func (a *App) Wait() error {
	err := <-a.serveErr
	a.serveErr <- err
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests, lets running ones finish until ctx
// ends, then stops the write path and closes the stores.
func (a *App) Shutdown(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	if err != nil {
		a.srv.Close()
	}
	a.cancel()
	a.wg.Wait()
	return errors.Join(err, a.closeStores())
}

func (a *App) closeStores() error {
	var errs []error
	if a.media != nil {
		errs = append(errs, a.media.Close())
	}
	if a.index != nil {
		errs = append(errs, a.index.Close())
	}
	return errors.Join(errs...)
}
