package producer

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Tag names with a meaning to KVS (and Kinema).
const (
	TagEndOfFragment   = "AWS_KINESISVIDEO_END_OF_FRAGMENT"
	TagNotification    = "AWS_KINESISVIDEO_NOTIFICATION"
	TagImageGeneration = "AWS_KINESISVIDEO_IMAGE_GENERATION"
	TagImagePrefix     = "AWS_KINESISVIDEO_IMAGE_PREFIX"
)

// Timecode types of the x-amzn-fragment-timecode-type header.
const (
	TimecodeAbsolute = "ABSOLUTE"
	TimecodeRelative = "RELATIVE"
)

// Defaults.
const (
	DefaultEndpoint   = "http://127.0.0.1:4566"
	DefaultRegion     = "us-east-1"
	DefaultAckTimeout = 30 * time.Second
)

// Tag is one fragment metadata item: a Tags element with one SimpleTag.
type Tag struct {
	Name  string
	Value string
}

// Config describes one PutMedia session. The zero value of every field but
// StreamName is usable.
type Config struct {
	// Endpoint is the control-plane base URL (DefaultEndpoint when empty).
	Endpoint string
	// Region enters the SigV4 scope (DefaultRegion when empty).
	Region string
	// Credentials. With an empty AccessKeyID nothing is signed.
	AccessKeyID, SecretAccessKey, SessionToken string

	StreamName string
	// CreateStream creates the stream when DescribeStream answers 404, as
	// the SDK does, with RetentionHours of retention. Note that 0 hours is
	// a stream without archive, which sends no PERSISTED acks; Put then
	// waits for RECEIVED instead.
	CreateStream   bool
	RetentionHours int
	// DataEndpoint skips GetDataEndpoint when set (scheme://host[:port]).
	DataEndpoint string

	// HTTPClient is used for every call; set it for custom TLS roots. The
	// default has no overall timeout, which a long PutMedia needs.
	HTTPClient *http.Client

	// TimecodeType is TimecodeAbsolute (default: Cluster timecodes are epoch
	// ms) or TimecodeRelative (ms since StartTime).
	TimecodeType string
	// StartTime is the producer start: the x-amzn-producer-start-timestamp
	// header and, in ABSOLUTE mode, the first Cluster's time. Default: now.
	StartTime time.Time
	// Realtime sends each frame when its timestamp comes (a live camera);
	// otherwise frames go as fast as the server reads them.
	Realtime bool
	// Loop sends the fragments this many times (0 means once), with
	// timestamps continuing across repeats.
	Loop int
	// NoEndOfFragmentTags leaves out the AWS_KINESISVIDEO_END_OF_FRAGMENT
	// tag that otherwise follows each fragment's last frame, as the SDK
	// sends it, so that the server can acknowledge at once. Without it a
	// fragment is complete only when the next Cluster starts or the body
	// ends. (A negative field, so that the zero Config sends it.)
	NoEndOfFragmentTags bool
	// FragmentTags returns the tags of fragment i (counting across Loop
	// repeats): custom KEY/VALUE items and the AWS_KINESISVIDEO_* event
	// tags. Each is written in its own Tags element after the fragment's
	// last frame and before the end-of-fragment tag.
	FragmentTags func(i int) []Tag

	// OnAck is called for every ack, in arrival order, from Put's goroutine.
	OnAck func(Ack)
	// OnSent is called from the sending goroutine when fragment i is
	// complete on the wire, with the body bytes sent so far.
	OnSent func(i int, bytes int64)
	// AckTimeout bounds the wait for the last acks once the last fragment is
	// sent (DefaultAckTimeout when zero).
	AckTimeout time.Duration
	// UserAgent for PutMedia (default "kinema-producer").
	UserAgent string
}

// withDefaults returns a copy of c with defaults filled in, or an error for
// settings that cannot work.
func (c Config) withDefaults() (Config, error) {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	c.Endpoint = strings.TrimRight(c.Endpoint, "/")
	c.DataEndpoint = strings.TrimRight(c.DataEndpoint, "/")
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	switch c.TimecodeType {
	case "":
		c.TimecodeType = TimecodeAbsolute
	case TimecodeAbsolute, TimecodeRelative:
	default:
		return c, fmt.Errorf("producer: timecode type %q is neither ABSOLUTE nor RELATIVE", c.TimecodeType)
	}
	if c.StartTime.IsZero() {
		c.StartTime = time.Now()
	}
	if c.Loop <= 0 {
		c.Loop = 1
	}
	if c.RetentionHours < 0 {
		return c, fmt.Errorf("producer: negative retention %d h", c.RetentionHours)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = defaultHTTPClient
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.UserAgent == "" {
		c.UserAgent = "kinema-producer"
	}
	return c, nil
}

// defaultHTTPClient has no Timeout: a PutMedia lasts as long as the camera
// streams. Shared, so that many Puts share its connection pool.
var defaultHTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// FormatStartTimestamp formats x-amzn-producer-start-timestamp as the SDK
// does: seconds, a dot, then the milliseconds as an integer that is NOT
// zero-padded (1795237808.072 s is sent as "1795237808.72"). Servers must
// read the part after the dot as an integer number of ms.
func FormatStartTimestamp(t time.Time) string {
	ms := t.UnixMilli()
	return strconv.FormatInt(ms/1000, 10) + "." + strconv.FormatInt(ms%1000, 10)
}
