package stream

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Status is a stream's lifecycle state as KVS names it.
type Status string

const (
	StatusCreating Status = "CREATING"
	StatusActive   Status = "ACTIVE"
	StatusUpdating Status = "UPDATING"
	StatusDeleting Status = "DELETING"
)

// Stream is one video stream's metadata.
type Stream struct {
	ID             int64
	Account        string
	Region         string
	Name           string
	DeviceName     string
	MediaType      string
	KMSKeyID       string
	Version        string
	Status         Status
	Created        time.Time
	RetentionHours int
	StorageTier    string
}

// ARN is the stream's ARN in KVS form:
// arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<creation epoch ms>.
func (s Stream) ARN() string {
	return fmt.Sprintf("arn:aws:kinesisvideo:%s:%s:stream/%s/%d", s.Region, s.Account, s.Name, s.Created.UnixMilli())
}

// ARNParts is a parsed stream ARN.
type ARNParts struct {
	Partition, Region, Account, Name string
	CreatedMs                        int64
}

// ParseARN splits a stream ARN. It checks the shape only; whether the stream
// exists is the caller's question.
func ParseARN(arn string) (ARNParts, error) {
	f := strings.SplitN(arn, ":", 6)
	if len(f) != 6 || f[0] != "arn" || f[2] != "kinesisvideo" || f[1] == "" {
		return ARNParts{}, fmt.Errorf("malformed stream ARN %q", arn)
	}
	res := strings.Split(f[5], "/")
	if len(res) != 3 || res[0] != "stream" || res[1] == "" {
		return ARNParts{}, fmt.Errorf("ARN %q does not name a stream", arn)
	}
	ms, err := strconv.ParseInt(res[2], 10, 64)
	if err != nil || ms < 0 {
		return ARNParts{}, fmt.Errorf("ARN %q has a malformed creation time", arn)
	}
	return ARNParts{Partition: f[1], Region: f[3], Account: f[4], Name: res[1], CreatedMs: ms}, nil
}

// Tag is one fragment-level MKV tag (custom key/value or an AWS_KINESISVIDEO_* event tag).
type Tag struct {
	Name  string
	Value string
}

// Names of the fragment tags KVS gives a meaning to.
const (
	TagEndOfFragment   = "AWS_KINESISVIDEO_END_OF_FRAGMENT"
	TagNotification    = "AWS_KINESISVIDEO_NOTIFICATION"
	TagImageGeneration = "AWS_KINESISVIDEO_IMAGE_GENERATION"
	TagImagePrefix     = "AWS_KINESISVIDEO_IMAGE_PREFIX"
	// SystemTagPrefix starts every tag name the service reserves.
	SystemTagPrefix = "AWS_KINESISVIDEO_"
)

// Fragment is one archived fragment: one MKV Cluster and the tags that came with it.
type Fragment struct {
	Number     FragmentNumber
	StreamID   int64
	ProducerMs int64 // fragment start on the producer's clock, epoch ms
	ServerMs   int64 // when the server began receiving the fragment, epoch ms
	DurationMs int64
	SizeBytes  int64 // bytes of the stored Cluster
	HeaderID   int64 // the track set (Info + Tracks) the Cluster is to be read with
	Location   Location
	Tags       []Tag
	// SampleTable is the fragment's samples (sizes, times, key frames) in
	// the encoding of fmp4.AppendClipFragment, made at ingest so that clips
	// are laid out without reading media. Nil when the media could not be
	// indexed; index queries fill it only when asked to.
	SampleTable []byte
}

// Location says where a fragment's Cluster bytes are.
type Location struct {
	SegmentID int64
	Offset    int64
	Length    int64
}
