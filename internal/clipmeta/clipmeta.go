// Package clipmeta is the device clip-metadata API that the cloud-storage
// design Kinema replaces ran as API Gateway + Lambda + DynamoDB in front of
// KVS: cameras PUT a record of every clip they upload to a stream, apps GET
// an HLS session URL that plays exactly one clip, list a device's or a
// stream's clips by time, and delete them. The package owns the wire
// contract (docs/clip-metadata.md), request parsing and validation; records
// live in a Store (the embedded index implements it), streams and playback
// URLs come from callbacks. It verifies no signatures: the server's
// dispatcher authenticates every request before it gets here.
package clipmeta

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Path is where the API lives; clip listings are at Path + "/clips".
const Path = "/ipc-video-metadata"

// Limits of the wire contract (docs/clip-metadata.md).
const (
	// MaxIDLen bounds clientID and deviceID.
	MaxIDLen = 128
	// MaxStreamNameLen is the KVS stream name limit.
	MaxStreamNameLen = 256
	// MaxClip is the longest clip, the longest range a KVS HLS ON_DEMAND
	// session may span. Stores rely on it to bound their range scans.
	MaxClip = 24 * time.Hour
	// MaxClipMs is MaxClip in milliseconds.
	MaxClipMs = int64(MaxClip / time.Millisecond)
	// DurationToleranceMs is how far duration·1000 may be from
	// endTime − begTime: devices report whole seconds, rounded or truncated.
	DurationToleranceMs = 1000
	// MaxTimeMs is the latest time accepted, 9999-12-31T23:59:59.999Z.
	MaxTimeMs = 253402300799999
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 64 << 10
	// DefaultMaxResults and MaxMaxResults bound a listing page.
	DefaultMaxResults = 100
	MaxMaxResults     = 1000
)

// Clip is one stored clip record. (ClientID, DeviceID, StreamName, BeginMs)
// identifies it; ID is ClipID of those four.
type Clip struct {
	ID                             string
	ClientID, DeviceID, StreamName string
	BeginMs, EndMs                 int64   // epoch ms, producer time; EndMs > BeginMs, at most MaxClipMs apart
	DurationSec                    float64 // as the device reported it, kept to the millisecond
	CreatedMs                      int64   // when the record was first stored
}

// ListQuery selects a client's clips that overlap [FromMs, ToMs] (both
// inclusive: BeginMs <= ToMs and EndMs >= FromMs), ordered by (BeginMs, ID),
// resuming strictly after (AfterBeginMs, AfterID) when AfterID is set.
type ListQuery struct {
	ClientID     string
	DeviceID     string // "" for every device
	StreamName   string // "" for every stream
	FromMs, ToMs int64
	AfterBeginMs int64
	AfterID      string
	Limit        int
}

// Store keeps clip records. The embedded index implements it; every
// implementation passes cliptest.Run.
type Store interface {
	// PutClip inserts c, or, when the client already has a clip with the same
	// (ClientID, DeviceID, StreamName, BeginMs), updates its EndMs and
	// DurationSec. Either way it writes the stored ID and CreatedMs back to c.
	PutClip(ctx context.Context, c *Clip) error
	// GetClip returns the client's clip of the stream with exactly this
	// begin and end (of several devices' clips, the latest created), or
	// archive.ErrNotFound.
	GetClip(ctx context.Context, clientID, streamName string, beginMs, endMs int64) (*Clip, error)
	// ListClips returns up to q.Limit clips (see ListQuery).
	ListClips(ctx context.Context, q ListQuery) ([]Clip, error)
	// DeleteClip deletes the client's clip with this ID, or returns
	// archive.ErrNotFound when the client has none.
	DeleteClip(ctx context.Context, clientID, id string) error
}

// ClipID is the ID of the clip with this key: 32 hex digits of a SHA-256,
// so the same record gets the same ID on every PUT and in every Store.
func ClipID(clientID, deviceID, streamName string, beginMs int64) string {
	h := sha256.New()
	for _, s := range []string{"clip1", clientID, deviceID, streamName, strconv.FormatInt(beginMs, 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0}) // no field may hold NUL, so the encoding is unambiguous
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
