package producer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const putUsage = `usage: kinema put [flags] --stream NAME FILE

Sends a media file to a Kinema (or KVS) stream with PutMedia, as a camera
running the KVS producer SDK would: remuxed by ffmpeg without re-encoding
(H.264/H.265 video, AAC audio), one fragment per key frame, acknowledged
fragment by fragment. Exits 0 when every fragment was PERSISTED.

flags:
`

// Connection is how a client command reaches a Kinema (or KVS) endpoint:
// the flags every such command takes, with their environment defaults.
type Connection struct {
	Endpoint, Region     string
	AccessKey, SecretKey string
	SessionToken         string // $AWS_SESSION_TOKEN only
	CAFile               string
}

// Register adds --endpoint, --region, --access-key, --secret-key and --ca-file.
func (c *Connection) Register(fs *flag.FlagSet, env func(string) string) {
	fs.StringVar(&c.Endpoint, "endpoint", firstNonEmpty(env("KINEMA_ENDPOINT"), DefaultEndpoint), "control-plane `URL` ($KINEMA_ENDPOINT)")
	fs.StringVar(&c.Region, "region", firstNonEmpty(env("AWS_REGION"), env("AWS_DEFAULT_REGION"), DefaultRegion), "SigV4 region ($AWS_REGION, $AWS_DEFAULT_REGION)")
	fs.StringVar(&c.AccessKey, "access-key", env("AWS_ACCESS_KEY_ID"), "access key id ($AWS_ACCESS_KEY_ID)")
	fs.StringVar(&c.SecretKey, "secret-key", env("AWS_SECRET_ACCESS_KEY"), "secret access key ($AWS_SECRET_ACCESS_KEY)")
	fs.StringVar(&c.CAFile, "ca-file", "", "trust this PEM CA `file` for https (e.g. the one kinema serve --tls made)")
	c.SessionToken = env("AWS_SESSION_TOKEN")
}

// CheckCredentials says what to do when no key pair was given.
func (c *Connection) CheckCredentials() error {
	if c.AccessKey == "" || c.SecretKey == "" {
		return errors.New("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --access-key and " +
			"--secret-key) to the key pair kinema serve printed at its first start (kept in DATA_DIR/credentials.json)")
	}
	return nil
}

// HTTPClient trusts CAFile on top of the system roots (nil: the default
// client). No overall timeout: a PutMedia lasts as long as the media.
func (c *Connection) HTTPClient() (*http.Client, error) {
	if c.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", c.CAFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// putFlags are the command line of kinema put.
type putFlags struct {
	Connection
	stream                   string
	create                   bool
	retention                int
	realtime, fast, relative bool
	loop                     int
	tags                     tagList
	notify, images           bool
	imagePrefix              string
	eventEvery               int
	noEoFR, quiet            bool
	fragmentMs               int64
	timeout                  time.Duration
}

// tagList collects repeated --tag KEY=VALUE flags.
type tagList []Tag

func (l *tagList) String() string { return fmt.Sprint(*l) }

func (l *tagList) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*l = append(*l, Tag{Name: k, Value: val})
	return nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// parsePutFlags parses flags placed before and after FILE alike (the flag
// package stops at the first argument that is not a flag).
func parsePutFlags(args []string, stderr io.Writer, env func(string) string) (*putFlags, string, error) {
	f := &putFlags{}
	fs := flag.NewFlagSet("kinema put", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, putUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.stream, "stream", "", "stream `NAME` (required)")
	f.Register(fs, env)
	fs.BoolVar(&f.create, "create", false, "create the stream if it does not exist")
	fs.IntVar(&f.retention, "retention-hours", 24, "retention of a stream made by --create (0: no archive)")
	fs.BoolVar(&f.realtime, "realtime", true, "send each frame when its timestamp comes, as a live camera")
	fs.BoolVar(&f.fast, "fast", false, "send as fast as the server takes it (overrides --realtime)")
	fs.IntVar(&f.loop, "loop", 1, "send the file `N` times, timestamps continuing")
	fs.BoolVar(&f.relative, "relative", false, "RELATIVE timecodes (ms since the producer start) instead of ABSOLUTE")
	fs.Var(&f.tags, "tag", "add the fragment metadata `KEY=VALUE` to every fragment (repeatable)")
	fs.BoolVar(&f.notify, "notify", false, "tag fragments with AWS_KINESISVIDEO_NOTIFICATION")
	fs.BoolVar(&f.images, "images", false, "tag fragments with AWS_KINESISVIDEO_IMAGE_GENERATION")
	fs.StringVar(&f.imagePrefix, "image-prefix", "", "AWS_KINESISVIDEO_IMAGE_PREFIX `P` for generated images (implies --images)")
	fs.IntVar(&f.eventEvery, "event-every", 1, "put the event tags on every `N`th fragment")
	fs.BoolVar(&f.noEoFR, "no-eofr", false, "do not end fragments with AWS_KINESISVIDEO_END_OF_FRAGMENT tags")
	fs.BoolVar(&f.quiet, "quiet", false, "print only errors")
	fs.Int64Var(&f.fragmentMs, "fragment-ms", DefaultAudioFragmentMs, "fragment length of audio-only files, in `ms`")
	fs.DurationVar(&f.timeout, "timeout", DefaultAckTimeout, "how long to wait for each fragment's PERSISTED ack")

	var files []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return nil, "", err
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		files, rest = append(files, rest[0]), rest[1:]
	}
	switch {
	case f.stream == "":
		return nil, "", errors.New("--stream is required")
	case len(files) != 1:
		return nil, "", fmt.Errorf("give exactly one FILE (got %d)", len(files))
	case f.CheckCredentials() != nil:
		return nil, "", f.CheckCredentials()
	case f.loop < 1 || f.eventEvery < 1 || f.retention < 0:
		return nil, "", errors.New("--loop and --event-every must be at least 1, --retention-hours at least 0")
	}
	if f.imagePrefix != "" {
		f.images = true
	}
	return f, files[0], nil
}

// fragmentTags puts the custom tags on every fragment and the event tags on
// every eventEvery-th one. Event tags come first, so that the custom ones
// follow them as the notification payload / image metadata would.
func (f *putFlags) fragmentTags() func(int) []Tag {
	if len(f.tags) == 0 && !f.notify && !f.images {
		return nil
	}
	return func(i int) []Tag {
		var out []Tag
		if i%f.eventEvery == 0 {
			if f.notify {
				out = append(out, Tag{Name: TagNotification})
			}
			if f.images {
				out = append(out, Tag{Name: TagImageGeneration})
				if f.imagePrefix != "" {
					out = append(out, Tag{Name: TagImagePrefix, Value: f.imagePrefix})
				}
			}
		}
		return append(out, f.tags...)
	}
}

// RunPut is `kinema put`: it returns the process exit code (0 when every
// fragment was PERSISTED, 1 when the put failed, 2 for bad usage).
func RunPut(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = os.Getenv
	}
	f, file, err := parsePutFlags(args, stderr, env)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kinema put: %v\n(kinema put -h for help)\n", err)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "kinema put: %v\n", err)
		return 1
	}
	client, err := f.HTTPClient()
	if err != nil {
		return fail(fmt.Errorf("--ca-file: %w", err))
	}
	m, err := OpenFile(ctx, file)
	if err != nil {
		return fail(err)
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(stderr, "kinema put: warning: %s\n", w)
	}
	plans := m.Fragments(f.fragmentMs)
	if len(plans) == 0 {
		return fail(fmt.Errorf("%s: no video key frame, so nothing to send", file))
	}
	total := len(plans) * f.loop

	out := newPutOutput(stdout, f.quiet, total)
	if !f.quiet {
		times := ""
		if f.loop > 1 {
			times = fmt.Sprintf(" x %d", f.loop)
		}
		fmt.Fprintf(stdout, "%s: %s, %d fragments%s -> stream %s at %s\n", file, describeMedia(m), len(plans), times, f.stream, f.Endpoint)
	}
	cfg := Config{
		Endpoint: f.Endpoint, Region: f.Region, StreamName: f.stream,
		AccessKeyID: f.AccessKey, SecretAccessKey: f.SecretKey, SessionToken: f.SessionToken,
		CreateStream: f.create, RetentionHours: f.retention, HTTPClient: client,
		Realtime: f.realtime && !f.fast, Loop: f.loop, NoEndOfFragmentTags: f.noEoFR,
		FragmentTags: f.fragmentTags(), AckTimeout: f.timeout,
		OnAck: out.ackFn, OnSent: out.sentFn,
	}
	if f.relative {
		cfg.TimecodeType = TimecodeRelative
	}
	out.start()
	res, err := Put(ctx, cfg, plans, m.Header)
	out.stop()
	if !f.quiet {
		fmt.Fprintln(stdout, summary(&res, total))
	}
	if err != nil {
		return fail(fmt.Errorf("%v (%d of %d fragments %s)", err, res.Done(), total, res.WaitFor))
	}
	return 0
}

// describeMedia is a one-line account of the tracks, for the first line of
// output.
func describeMedia(m *Media) string {
	var parts []string
	for _, t := range m.Header.Tracks {
		n := 0
		for _, fr := range m.Frames {
			if fr.Track == t.Number {
				n++
			}
		}
		switch t.CodecID {
		case CodecH264, CodecH265:
			name := map[string]string{CodecH264: "H.264", CodecH265: "H.265"}[t.CodecID]
			parts = append(parts, fmt.Sprintf("%s %dx%d (%d frames)", name, t.PixelWidth, t.PixelHeight, n))
		default:
			parts = append(parts, fmt.Sprintf("AAC %g kHz (%d frames)", t.SamplingFrequency/1000, n))
		}
	}
	return fmt.Sprintf("%.1f s, %s", float64(m.DurationMs)/1000, strings.Join(parts, " + "))
}

func summary(r *Result, total int) string {
	s := fmt.Sprintf("%d of %d fragments %s, %.1f MB in %.1f s", r.Done(), total, strings.ToLower(firstNonEmpty(r.WaitFor, AckPersisted)),
		float64(r.BytesSent)/1e6, r.Elapsed.Seconds())
	if lat := r.PersistedLatencies(); len(lat) > 0 {
		var sum, worst time.Duration
		for _, l := range lat {
			sum += l
			worst = max(worst, l)
		}
		s += fmt.Sprintf("; PERSISTED latency mean %v, max %v", (sum / time.Duration(len(lat))).Round(time.Millisecond), worst.Round(time.Millisecond))
	}
	return s
}
