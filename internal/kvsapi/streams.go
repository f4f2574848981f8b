package kvsapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/kinema/kinema/internal/apierr"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

const maxRetentionHours = 87600

type streamStorageConfiguration struct {
	DefaultStorageTier *string `json:"DefaultStorageTier"`
}

type createStreamInput struct {
	StreamName                 *string                     `json:"StreamName"`
	DeviceName                 *string                     `json:"DeviceName"`
	MediaType                  *string                     `json:"MediaType"`
	KmsKeyID                   *string                     `json:"KmsKeyId"`
	DataRetentionInHours       *int64                      `json:"DataRetentionInHours"`
	Tags                       map[string]string           `json:"Tags"`
	StreamStorageConfiguration *streamStorageConfiguration `json:"StreamStorageConfiguration"`
}

func checkDeviceName(v *string) error {
	if v == nil {
		return nil
	}
	return checkPattern("DeviceName", *v, 1, 128, reStreamName)
}

func checkMediaType(v *string) error {
	if v == nil {
		return nil
	}
	return checkPattern("MediaType", *v, 1, 128, reMediaType)
}

// newVersion makes an opaque stream version: it changes on every metadata update.
func newVersion() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [20]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

func (s *Server) region(c *call) string {
	if s.cfg.Region != "" {
		return s.cfg.Region
	}
	if c.ident.Region != "" {
		return c.ident.Region
	}
	return "us-east-1"
}

func (s *Server) createStream(c *call) (any, error) {
	var in createStreamInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.StreamName == nil {
		return nil, apierr.InvalidArg("StreamName is required")
	}
	if err := checkStreamName(*in.StreamName); err != nil {
		return nil, err
	}
	if err := errors.Join(checkDeviceName(in.DeviceName), checkMediaType(in.MediaType)); err != nil {
		return nil, firstAPIError(err)
	}
	// The ARN to be: a policy may allow creating only some names.
	if err := s.authorizeStream(c.ctx, nil, *in.StreamName); err != nil {
		return nil, err
	}
	st := &stream.Stream{
		Account: s.account(c.ctx), Region: s.region(c), Name: *in.StreamName,
		Version: newVersion(), Status: stream.StatusActive, Created: time.Now().Truncate(time.Millisecond),
		StorageTier: "HOT",
	}
	st.KMSKeyID = fmt.Sprintf("arn:aws:kms:%s:%s:alias/aws/kinesisvideo", st.Region, st.Account)
	if in.KmsKeyID != nil {
		if err := checkLen("KmsKeyId", *in.KmsKeyID, 1, 2048); err != nil {
			return nil, err
		}
		st.KMSKeyID = *in.KmsKeyID
	}
	if in.DeviceName != nil {
		st.DeviceName = *in.DeviceName
	}
	if in.MediaType != nil {
		st.MediaType = *in.MediaType
	}
	if in.DataRetentionInHours != nil {
		h := *in.DataRetentionInHours
		if h < 0 || h > maxRetentionHours {
			return nil, apierr.InvalidArg("DataRetentionInHours must be 0 to %d; got %d", maxRetentionHours, h)
		}
		st.RetentionHours = int(h)
	}
	if in.StreamStorageConfiguration != nil {
		if in.StreamStorageConfiguration.DefaultStorageTier == nil {
			return nil, apierr.InvalidArg("StreamStorageConfiguration.DefaultStorageTier is required")
		}
		if err := checkEnum("DefaultStorageTier", *in.StreamStorageConfiguration.DefaultStorageTier, "HOT", "WARM"); err != nil {
			return nil, err
		}
		st.StorageTier = *in.StreamStorageConfiguration.DefaultStorageTier
	}
	if in.Tags != nil && len(in.Tags) == 0 {
		return nil, apierr.InvalidArg("Tags must hold 1 to %d tags when given", maxTags)
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	if err := s.checkStreamQuota(c); err != nil {
		return nil, err
	}
	err := s.cfg.Archive.Index.CreateStream(c.ctx, st, in.Tags)
	if errors.Is(err, archive.ErrExists) {
		return nil, apierr.New("ResourceInUseException", "The stream %s already exists.", st.Name)
	}
	if err != nil {
		return nil, apierr.Internal(err)
	}
	c.log.Info("stream created", "stream", st.Name, "retention_hours", st.RetentionHours)
	return map[string]string{"StreamARN": st.ARN()}, nil
}

// firstAPIError unwraps the first *apierr.Error of a joined error.
func firstAPIError(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != nil {
				return e
			}
		}
	}
	return err
}

type streamInfo struct {
	DeviceName           string              `json:"DeviceName,omitempty"`
	StreamName           string              `json:"StreamName"`
	StreamARN            string              `json:"StreamARN"`
	MediaType            string              `json:"MediaType,omitempty"`
	KmsKeyID             string              `json:"KmsKeyId,omitempty"`
	Version              string              `json:"Version"`
	Status               string              `json:"Status"`
	CreationTime         stream.EpochSeconds `json:"CreationTime"`
	DataRetentionInHours int                 `json:"DataRetentionInHours"`
}

func toStreamInfo(st *stream.Stream) streamInfo {
	return streamInfo{
		DeviceName: st.DeviceName, StreamName: st.Name, StreamARN: st.ARN(), MediaType: st.MediaType,
		KmsKeyID: st.KMSKeyID, Version: st.Version, Status: string(st.Status),
		CreationTime: stream.EpochSeconds(st.Created.UnixMilli()), DataRetentionInHours: st.RetentionHours,
	}
}

func (s *Server) describeStream(c *call) (any, error) {
	st, err := s.namedStream(c)
	if err != nil {
		return nil, err
	}
	return map[string]any{"StreamInfo": toStreamInfo(st)}, nil
}

type listStreamsInput struct {
	MaxResults          *int64  `json:"MaxResults"`
	NextToken           *string `json:"NextToken"`
	StreamNameCondition *struct {
		ComparisonOperator *string `json:"ComparisonOperator"`
		ComparisonValue    *string `json:"ComparisonValue"`
	} `json:"StreamNameCondition"`
}

func (s *Server) listStreams(c *call) (any, error) {
	var in listStreamsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	limit := int64(10000)
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 10000 {
			return nil, apierr.InvalidArg("MaxResults must be 1 to 10000; got %d", *in.MaxResults)
		}
		limit = *in.MaxResults
	}
	after := ""
	if in.NextToken != nil {
		if err := checkPattern("NextToken", *in.NextToken, 0, 1024, reNextToken); err != nil {
			return nil, err
		}
		if *in.NextToken != "" {
			cur, err := decodeToken("NextToken", *in.NextToken, 1024)
			if err != nil {
				return nil, err
			}
			after = cur
		}
	}
	prefix := ""
	if cond := in.StreamNameCondition; cond != nil {
		if cond.ComparisonOperator != nil {
			if err := checkEnum("ComparisonOperator", *cond.ComparisonOperator, "BEGINS_WITH"); err != nil {
				return nil, err
			}
		}
		if cond.ComparisonValue != nil {
			if err := checkStreamName(*cond.ComparisonValue); err != nil {
				return nil, err
			}
			prefix = *cond.ComparisonValue
		}
	}
	list, err := s.cfg.Archive.Index.ListStreams(c.ctx, s.account(c.ctx), prefix, after, int(limit)+1)
	if err != nil {
		return nil, apierr.Internal(err)
	}
	out := struct {
		StreamInfoList []streamInfo `json:"StreamInfoList"`
		NextToken      string       `json:"NextToken,omitempty"`
	}{StreamInfoList: []streamInfo{}}
	for i := range list {
		if int64(i) == limit {
			out.NextToken = encodeToken(list[i-1].Name)
			break
		}
		out.StreamInfoList = append(out.StreamInfoList, toStreamInfo(&list[i]))
	}
	return out, nil
}

type deleteStreamInput struct {
	StreamARN      *string `json:"StreamARN"`
	CurrentVersion *string `json:"CurrentVersion"`
}

func (s *Server) deleteStream(c *call) (any, error) {
	var in deleteStreamInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.StreamARN == nil {
		return nil, apierr.InvalidArg("StreamARN is required")
	}
	st, err := s.resolve(c.ctx, streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	if in.CurrentVersion != nil {
		if err := checkPattern("CurrentVersion", *in.CurrentVersion, 1, 64, reVersion); err != nil {
			return nil, err
		}
		if *in.CurrentVersion != st.Version {
			return nil, apierr.New("VersionMismatchException", "CurrentVersion %s is not the stream's version", *in.CurrentVersion)
		}
	}
	if err := s.cfg.Archive.Index.DeleteStream(c.ctx, st.ID); err != nil {
		if errors.Is(err, archive.ErrNotFound) {
			return nil, apierr.NotFound("The requested stream is not found or not active.")
		}
		return nil, apierr.Internal(err)
	}
	s.cfg.Archive.Live.Forget(st.ID)
	if s.cfg.Janitor != nil {
		s.cfg.Janitor.Kick()
	}
	c.log.Info("stream deleted", "stream", st.Name)
	return nil, nil
}

type updateStreamInput struct {
	streamRef
	CurrentVersion *string `json:"CurrentVersion"`
	DeviceName     *string `json:"DeviceName"`
	MediaType      *string `json:"MediaType"`
}

// versioned resolves the stream and runs fn under the CurrentVersion check,
// giving the stream a new version when fn succeeds.
func (s *Server) versioned(c *call, ref streamRef, current *string, fn func(*stream.Stream) error) (*stream.Stream, error) {
	if current == nil {
		return nil, apierr.InvalidArg("CurrentVersion is required")
	}
	if err := checkPattern("CurrentVersion", *current, 1, 64, reVersion); err != nil {
		return nil, err
	}
	st, err := s.resolve(c.ctx, ref)
	if err != nil {
		return nil, err
	}
	out, err := s.cfg.Archive.Index.UpdateStream(c.ctx, st.ID, func(cur *stream.Stream) error {
		if cur.Version != *current {
			return apierr.New("VersionMismatchException", "CurrentVersion %s is not the stream's version", *current)
		}
		if err := fn(cur); err != nil {
			return err
		}
		cur.Version = newVersion()
		return nil
	})
	if errors.Is(err, archive.ErrNotFound) {
		return nil, apierr.NotFound("The requested stream is not found or not active.")
	}
	return out, err
}

func (s *Server) updateStream(c *call) (any, error) {
	var in updateStreamInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := errors.Join(checkDeviceName(in.DeviceName), checkMediaType(in.MediaType)); err != nil {
		return nil, firstAPIError(err)
	}
	_, err := s.versioned(c, in.streamRef, in.CurrentVersion, func(st *stream.Stream) error {
		if in.DeviceName != nil {
			st.DeviceName = *in.DeviceName
		}
		if in.MediaType != nil {
			st.MediaType = *in.MediaType
		}
		return nil
	})
	return nil, err
}

type updateDataRetentionInput struct {
	streamRef
	CurrentVersion             *string `json:"CurrentVersion"`
	Operation                  *string `json:"Operation"`
	DataRetentionChangeInHours *int64  `json:"DataRetentionChangeInHours"`
}

func (s *Server) updateDataRetention(c *call) (any, error) {
	var in updateDataRetentionInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.Operation == nil {
		return nil, apierr.InvalidArg("Operation is required")
	}
	if err := checkEnum("Operation", *in.Operation, "INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION"); err != nil {
		return nil, err
	}
	if in.DataRetentionChangeInHours == nil {
		return nil, apierr.InvalidArg("DataRetentionChangeInHours is required")
	}
	change := *in.DataRetentionChangeInHours
	if change < 1 {
		return nil, apierr.InvalidArg("DataRetentionChangeInHours must be at least 1; got %d", change)
	}
	decrease := *in.Operation == "DECREASE_DATA_RETENTION"
	_, err := s.versioned(c, in.streamRef, in.CurrentVersion, func(st *stream.Stream) error {
		h := int64(st.RetentionHours) + change
		if decrease {
			h = int64(st.RetentionHours) - change
		}
		if h < 0 || h > maxRetentionHours {
			return apierr.InvalidArg("retention would become %d hours; it must stay within 0 to %d", h, maxRetentionHours)
		}
		st.RetentionHours = int(h)
		return nil
	})
	if err == nil && decrease && s.cfg.Janitor != nil {
		s.cfg.Janitor.Kick() // data past the new window goes at once
	}
	return nil, err
}

var apiNames = []string{"PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
	"GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES"}

type getDataEndpointInput struct {
	streamRef
	APIName *string `json:"APIName"`
}

func (s *Server) getDataEndpoint(c *call) (any, error) {
	var in getDataEndpointInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.APIName == nil {
		return nil, apierr.InvalidArg("APIName is required")
	}
	if err := checkEnum("APIName", *in.APIName, apiNames...); err != nil {
		return nil, err
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	if *in.APIName == "PUT_MEDIA" && s.cfg.IngestOwners != nil {
		url, ok, err := s.cfg.IngestOwners.IngestOwner(c.ctx, st.ID)
		if err != nil {
			return nil, apierr.Internal(err)
		}
		if ok {
			return map[string]string{"DataEndpoint": url}, nil
		}
	}
	return map[string]string{"DataEndpoint": s.publicURL(c.r)}, nil
}

// publicURL is the base URL clients reach this server at.
func (s *Server) publicURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	// The producer SDK signs and sends Host without the port; take the port
	// the request actually arrived on.
	if _, _, err := net.SplitHostPort(host); err != nil {
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if _, port, err := net.SplitHostPort(la.String()); err == nil {
				host = net.JoinHostPort(strings.Trim(host, "[]"), port)
			}
		}
	}
	return scheme + "://" + host
}

// checkStreamQuota refuses a new stream to an account that has
// MaxStreamsPerAccount live ones already: a tenant must not be able to fill
// the server's index. Concurrent creations may overshoot by a few; it is a
// quota, not an invariant.
func (s *Server) checkStreamQuota(c *call) error {
	max := s.cfg.MaxStreamsPerAccount
	if max <= 0 {
		return nil
	}
	n, err := countStreams(c.ctx, s.cfg.Archive.Index, s.account(c.ctx), max)
	if err != nil {
		return apierr.Internal(err)
	}
	if n >= max {
		return apierr.New("AccountStreamLimitExceededException", "the account has %d streams, its limit", max)
	}
	return nil
}

// streamCounter is implemented by indexes that count an account's streams
// without reading them (sqlindex); others are counted by listing, up to max.
type streamCounter interface {
	CountStreams(ctx context.Context, account string) (int, error)
}

func countStreams(ctx context.Context, idx archive.Index, account string, max int) (int, error) {
	if sc, ok := idx.(streamCounter); ok {
		return sc.CountStreams(ctx, account)
	}
	list, err := idx.ListStreams(ctx, account, "", "", max)
	return len(list), err
}
