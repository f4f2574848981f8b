// Package app wires Kinema together and owns the start and stop order:
// index, media store and archive recovery first, then the janitor and the
// notifier, then the HTTP listener; on stop, the reverse. It is the one package that imports
// every other.
package app

import (
	"cmp"
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
	"strings"
	"sync"
	"time"

	"github.com/kinema/kinema/internal/admin"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/cluster"
	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/images"
	"github.com/kinema/kinema/internal/ingest"
	"github.com/kinema/kinema/internal/iotcreds"
	"github.com/kinema/kinema/internal/kvsapi"
	"github.com/kinema/kinema/internal/limits"
	"github.com/kinema/kinema/internal/metrics"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/outbox"
	"github.com/kinema/kinema/internal/playback"
	"github.com/kinema/kinema/internal/sigv4"
	"github.com/kinema/kinema/internal/sts"
	"github.com/kinema/kinema/internal/tlsutil"
)

// Config is everything `kinema serve` can be told.
type Config struct {
	DataDir string
	// Index is where the index lives: "" for the embedded SQLite database
	// in DataDir, or a postgres:// URL (shared by several nodes).
	Index string
	// Media is where fragment bytes live: "" for segment files in DataDir,
	// or s3://bucket/prefix on the store S3 describes.
	Media string
	// MediaPutInterval is the least time between two S3 PUTs of the
	// media store (s3media.Options.PutInterval).
	MediaPutInterval time.Duration
	// NodeID names this node among those sharing a PostgreSQL index and S3
	// media (default: host name and listen port); it must be stable across
	// restarts, since the node recovers the segments written under it.
	NodeID string
	// NATS, if set, is the NATS server nodes announce persisted fragments
	// on (NATSSubject, default "kinema.persisted"), so that live readers
	// on every node follow every node's streams.
	NATS, NATSSubject string

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
	// FFmpeg is the ffmpeg program image operations run: a path or a name
	// looked up in PATH (default "ffmpeg"). Without it only they fail.
	FFmpeg string
	// S3 is the S3-compatible store that s3:// image destinations name.
	S3 images.S3Config
	// ImageRetryBackoff is the first wait before a failed image generation
	// (an upload refused, ffmpeg missing) is tried again: default 1 s,
	// doubling up to 5 min. ImageAttempts (default 30, about two hours of
	// an unreachable store) is how many tries a fragment gets before it is
	// DEAD, to be redriven with the events API.
	ImageRetryBackoff time.Duration
	ImageAttempts     int
	// Notify configures notification delivery (topic mappings, webhook
	// secrets, retries); nil means the defaults.
	Notify *notify.Config

	Logger *slog.Logger
	Stdout io.Writer // where first-start messages go
	// SignatureClock replaces the clock signatures are checked against
	// (tests replay recorded, signed traffic with it). Nil: time.Now.
	SignatureClock func() time.Time
	// IAMClock replaces the clock session tokens expire by and time
	// conditions see (tests move it forward). Nil: time.Now.
	IAMClock func() time.Time

	// ServerKey (64 hex digits) encrypts stored secrets and seals session
	// tokens; empty: the data dir's server.key, made on first start.
	ServerKey string
	// RateLimits are the abuse limits; nil means limits.Defaults().
	RateLimits *limits.Config
	// MaxStreamsPerAccount bounds each account's live streams; 0: none.
	MaxStreamsPerAccount int
	// IoTListen, if set, serves the device credentials endpoint
	// (GET /role-aliases/{alias}/credentials) over mutual TLS there.
	IoTListen string
}

// App is a running Kinema server.
type App struct {
	URL         string // base URL of the listener
	CAPath      string // CA file clients should trust, with self-signed TLS
	Credentials Credentials
	Archive     *archive.Archive
	Notifier    *notify.Notifier
	IAM         *iam.Service
	// IoTURL is the device credentials endpoint's base URL (with
	// IoTListen); DeviceCAPath is the CA file devices trust it with.
	IoTURL       string
	DeviceCAPath string
	// ImageGeneration makes the images of fragments tagged for image
	// generation, from the outbox.
	ImageGeneration *outbox.Worker
	// Metrics is the node's registry, served at metrics.Path.
	Metrics *metrics.Metrics

	log      *slog.Logger
	srv      *http.Server
	decoder  *images.Decoder
	ln       net.Listener
	index    Index
	media    archive.Media
	iamStore iam.Store
	audit    *iam.Audit
	iotSrv   *http.Server
	fanout   *cluster.Fanout
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
	a := &App{log: cfg.Logger, Credentials: creds, serveErr: make(chan error, 1), Metrics: metrics.New()}
	ok := false
	defer func() {
		if !ok {
			if a.cancel != nil { // stop what already runs on the stores
				a.cancel()
				a.wg.Wait()
			}
			a.closeStores()
		}
	}()

	if sharedIndex(cfg.Index) && cfg.ServerKey == "" {
		return nil, errClusterNeedsServerKey
	}
	serverKey, err := iam.LoadServerKey(cfg.DataDir, cfg.ServerKey)
	if err != nil {
		return nil, err
	}
	var indexKind, mediaKind string
	if a.index, indexKind, err = OpenIndex(ctx, cfg.Index, cfg.DataDir); err != nil {
		return nil, err
	}
	if err := a.openIAM(ctx, cfg, creds, serverKey); err != nil {
		return nil, err
	}
	if a.media, mediaKind, err = openMedia(ctx, cfg, a.Metrics.S3Media); err != nil {
		return nil, err
	}
	shared, nodeID, err := joinIndex(ctx, cfg, a.index, mediaKind)
	if err != nil {
		return nil, err
	}
	aopt := archive.Options{SegmentBytes: cfg.SegmentBytes, Logger: cfg.Logger, Node: nodeID, Metrics: a.Metrics.Archive}
	if cfg.NATS != "" {
		if a.fanout, err = cluster.DialFanout(cfg.NATS, cmp.Or(cfg.NATSSubject, "kinema.persisted"), cmp.Or(nodeID, "alone"), cfg.Logger); err != nil {
			return nil, err
		}
		aopt.OnPersisted = a.fanout.Persisted
	}
	if a.Archive, err = archive.Open(ctx, a.index, a.media, aopt); err != nil {
		return nil, err
	}
	if a.fanout != nil {
		if err := a.fanout.Follow(a.Archive.Live); err != nil {
			return nil, err
		}
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
	keys, err := nodeKeys(cfg, serverKey, &ncfg)
	if err != nil {
		return nil, err
	}
	// The janitor and the outbox consumers run on one node at a time, the
	// holder of their lease (archive/lease.go). WatchTriggers only hears
	// this node's commits: on an index other nodes write to, the holder
	// reads the outbox every second too.
	var outboxPoll time.Duration
	if indexKind == "postgres" {
		outboxPoll = time.Second
	}
	a.Notifier = notify.New(ncfg, notify.Options{Index: a.index, Wake: a.Archive.WatchTriggers(), PollInterval: outboxPoll, Logger: cfg.Logger, Metrics: a.Metrics.Outbox})
	a.Metrics.Outbox.WatchRows(outbox.RowCounter(a.index,
		[]archive.TriggerKind{archive.TriggerNotification, archive.TriggerImageGeneration}, outboxRowsCap), 5*time.Second)
	imageWake := a.Archive.WatchTriggers()
	a.wg.Add(3)
	go func() { defer a.wg.Done(); a.Archive.Run(runCtx) }()
	go func() { defer a.wg.Done(); janitor.Run(runCtx) }()
	go func() { defer a.wg.Done(); a.Notifier.Run(runCtx) }()
	if sharedIndex(cfg.Index) { // other nodes change IAM too
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.IAM.Follow(runCtx, 0) }()
	}

	ing := ingest.NewService(a.Archive, cfg.Logger)
	ing.Metrics = a.Metrics.Ingest
	if cfg.Limits != nil {
		ing.Limits = *cfg.Limits
	}
	var ingestOwners kvsapi.IngestOwners
	if pg, ok := a.index.(*pgindex.Index); ok {
		// Also for a node alone: the beat keeps its lock taken.
		if shared != nil {
			ing.Claims, ingestOwners = shared, shared
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			cluster.Heartbeats(runCtx, pg, cluster.HeartbeatInterval, cfg.Logger)
		}()
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
	publicURL := advertisedURL(cfg, a.ln.Addr().String())

	lcfg := limits.Defaults()
	if cfg.RateLimits != nil {
		lcfg = *cfg.RateLimits
	}
	limiter := limits.New(lcfg)
	// The same CA as --tls's self-signed certificate (its directory), so
	// one CA file lets a camera trust both endpoints.
	ca, err := iotcreds.OpenCA(filepath.Join(cfg.DataDir, "tls"))
	if err != nil {
		return nil, err
	}
	a.DeviceCAPath = ca.Path
	adminHandler := &admin.Handler{IAM: a.IAM, CA: ca}
	a.decoder = &images.Decoder{Program: cfg.FFmpeg, Log: cfg.Logger}
	if err := a.decoder.Available(); err != nil {
		cfg.Logger.Warn("image operations are unavailable", "err", err)
	}
	imageService := &images.Service{Archive: a.Archive, Decoder: a.decoder, Log: cfg.Logger}
	account := cfg.Account
	if account == "" {
		account = kvsapi.DefaultAccount
	}
	generator := &images.Generator{Images: imageService, Store: &images.Store{S3: cfg.S3}, Account: account}
	a.ImageGeneration = outbox.New(outbox.Options{
		Kind: archive.TriggerImageGeneration, Index: a.index, Wake: imageWake, PollInterval: outboxPoll, Name: "image generation", Logger: cfg.Logger,
		MaxAttempts: cmp.Or(cfg.ImageAttempts, 30), MinBackoff: cmp.Or(cfg.ImageRetryBackoff, time.Second), MaxBackoff: 5 * time.Minute,
		// Decoding is CPU-bound: a few fragments at a time use the cores
		// without starving the readers.
		AttemptTimeout: 2 * time.Minute, Concurrency: 4, Metrics: a.Metrics.Outbox,
	}, generator.Attempt)
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.ImageGeneration.Run(runCtx) }()
	api := kvsapi.New(kvsapi.Config{
		Archive: a.Archive, Ingest: ing, Janitor: janitor, Notify: a.Notifier, ImageGeneration: a.ImageGeneration,
		Playback:             &playback.Server{Archive: a.Archive, Keys: keys, Log: cfg.Logger, Readers: a.Metrics.Readers},
		Verifier:             &sigv4.Verifier{Service: "kinesisvideo", Region: cfg.Region, Credentials: a.IAM, Now: cfg.SignatureClock},
		IAM:                  a.IAM,
		Admin:                adminHandler,
		Limits:               limiter,
		Images:               imageService,
		MaxStreamsPerAccount: cfg.MaxStreamsPerAccount,
		Account:              cfg.Account,
		Region:               cfg.Region,
		PublicURL:            publicURL,
		IngestOwners:         ingestOwners,
		GetMediaIdle:         cfg.GetMediaIdle,
		Logger:               cfg.Logger,
		Metrics:              a.Metrics.API,
		Readers:              a.Metrics.Readers,
	})
	api.SetClipMeta(&clipmeta.Handler{Store: a.index, StreamExists: api.StreamExists, SessionURL: api.ClipSessionURL,
		Namespace: api.ClipNamespace, Logger: cfg.Logger})
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(cfg.HTTP2 && tlsConfig != nil)
	stsHandler := &sts.Handler{IAM: a.IAM, Limits: limiter, Logger: cfg.Logger,
		Verifier: &sigv4.Verifier{Service: "sts", Region: cfg.Region, Credentials: a.IAM, Now: cfg.SignatureClock}}
	// STS speaks the query protocol at POST /; every KVS operation has a
	// path of its own.
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sts.IsSTS(r) {
			stsHandler.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	handler = limits.IdleDeadlines(handler, lcfg.IdleTimeout)
	a.srv = &http.Server{
		Handler:           a.withHealth(handler),
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
	// The device endpoint first: the admin API reports its address.
	if cfg.IoTListen != "" {
		if err := a.serveIoT(cfg, ca, limiter, lcfg.IdleTimeout); err != nil {
			a.ln.Close()
			return nil, err
		}
		adminHandler.CredentialEndpoint = strings.TrimPrefix(a.IoTURL, "https://")
	}
	go func() { a.serveErr <- a.srv.Serve(ln) }()
	cfg.Logger.Info("kinema serving", "url", a.URL, "data_dir", cfg.DataDir, "region", cfg.Region, "index", indexKind, "media", mediaKind)
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
	if a.iotSrv != nil {
		if ierr := a.iotSrv.Shutdown(ctx); ierr != nil {
			a.iotSrv.Close()
		}
	}
	a.cancel()
	a.wg.Wait()
	a.decoder.Close()
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
	if a.iamStore != nil {
		errs = append(errs, a.iamStore.Close())
	}
	if a.fanout != nil {
		a.fanout.Close()
	}
	errs = append(errs, a.audit.Close())
	return errors.Join(errs...)
}

// openIAM opens the accounts, keys and policies and the audit log; the
// root key is the default account's operator. They are kept in the
// embedded index's database, or with a PostgreSQL index in that database,
// shared by the nodes (Start follows it).
func (a *App) openIAM(ctx context.Context, cfg Config, root Credentials, serverKey []byte) error {
	store, err := openIAMStore(ctx, cfg)
	if err != nil {
		return err
	}
	a.iamStore = store
	if a.audit, err = iam.OpenAudit(filepath.Join(cfg.DataDir, iam.AuditFile), cfg.Logger); err != nil {
		return err
	}
	account := cfg.Account
	if account == "" {
		account = kvsapi.DefaultAccount
	}
	a.IAM, err = iam.Open(ctx, iam.Options{Store: store, ServerKey: serverKey, DefaultAccount: account,
		RootAccessKeyID: root.AccessKeyID, RootSecret: root.SecretAccessKey, Now: cfg.IAMClock, Audit: a.audit, Logger: cfg.Logger})
	return err
}

// serveIoT starts the device credentials endpoint on its own mutual-TLS
// listener: client certificates are asked for in the TLS handshake, which
// the KVS API's listener must not do to clients without one.
func (a *App) serveIoT(cfg Config, ca *iotcreds.CA, limiter *limits.Limiter, idle time.Duration) error {
	host, _, _ := net.SplitHostPort(cfg.IoTListen)
	hosts := []string{host, "localhost", "127.0.0.1"}
	tcfg, err := ca.ServerConfig(hosts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.IoTListen)
	if err != nil {
		return err
	}
	a.IoTURL = "https://" + ln.Addr().String()
	h := &iotcreds.Handler{IAM: a.IAM, Limits: limiter, Logger: cfg.Logger}
	a.iotSrv = &http.Server{
		Handler:           limits.IdleDeadlines(h, idle),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		TLSConfig:         tcfg,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go a.iotSrv.Serve(tls.NewListener(ln, tcfg))
	cfg.Logger.Info("device credentials endpoint serving", "url", a.IoTURL)
	return nil
}
