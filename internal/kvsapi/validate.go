package kvsapi

import (
	"context"
	"encoding/base64"
	"errors"
	"github.com/kinema/kinema/internal/apierr"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// Field constraints from the KVS service model. Clients check only required
// fields and minimums, so every maximum, pattern and enum is enforced here.
var (
	reStreamName = regexp.MustCompile(`^[a-zA-Z0-9_.\-]+$`)
	reStreamARN  = regexp.MustCompile(`^arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.\-]+/[0-9]+$`)
	reMediaType  = regexp.MustCompile(`^[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*$`)
	reVersion    = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
	reTag        = regexp.MustCompile(`^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`)
	reNextToken  = regexp.MustCompile(`^[a-zA-Z0-9+/=]*$`)
	reFragNumber = regexp.MustCompile(`^[0-9]+$`)
)

func checkLen(field, v string, min, max int) error {
	n := utf8.RuneCountInString(v)
	if n < min || n > max {
		return apierr.InvalidArg("%s must be %d to %d characters long; got %d", field, min, max, n)
	}
	return nil
}

func checkPattern(field, v string, min, max int, re *regexp.Regexp) error {
	if err := checkLen(field, v, min, max); err != nil {
		return err
	}
	if !re.MatchString(v) {
		return apierr.InvalidArg("%s %q does not match the pattern %s", field, v, re.String())
	}
	return nil
}

func checkStreamName(v string) error { return checkPattern("StreamName", v, 1, 256, reStreamName) }

func checkEnum(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return apierr.InvalidArg("%s %q is not one of %v", field, v, allowed)
}

func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return apierr.New("TagsPerResourceExceededLimitException", "at most %d tags are allowed; got %d", maxTags, len(tags))
	}
	for k, v := range tags {
		if err := checkPattern("tag key", k, 1, 128, reTag); err != nil {
			return err
		}
		if err := checkPattern("tag value", v, 0, 256, reTag); err != nil {
			return err
		}
	}
	return nil
}

const maxTags = 50

// streamRef is how most operations name a stream: by name, by ARN, or both.
type streamRef struct {
	StreamName *string `json:"StreamName"`
	StreamARN  *string `json:"StreamARN"`
}

// resolve finds the live stream a request names, in the caller's account,
// and authorizes the request's action on it (see authz.go): every
// operation on a stream goes through here.
func (s *Server) resolve(ctx context.Context, ref streamRef) (*stream.Stream, error) {
	if ref.StreamName == nil && ref.StreamARN == nil {
		return nil, apierr.InvalidArg("either StreamName or StreamARN must be given")
	}
	var name string
	var parts *stream.ARNParts
	if ref.StreamARN != nil {
		if err := checkPattern("StreamARN", *ref.StreamARN, 1, 1024, reStreamARN); err != nil {
			return nil, err
		}
		p, err := stream.ParseARN(*ref.StreamARN)
		if err != nil {
			return nil, apierr.InvalidArg("%v", err)
		}
		parts, name = &p, p.Name
	}
	if ref.StreamName != nil {
		if err := checkStreamName(*ref.StreamName); err != nil {
			return nil, err
		}
		if parts != nil && parts.Name != *ref.StreamName {
			return nil, apierr.InvalidArg("StreamName %q and StreamARN %q name different streams", *ref.StreamName, *ref.StreamARN)
		}
		name = *ref.StreamName
	}
	account := s.account(ctx)
	if parts != nil && parts.Account != account {
		// Another account's stream: authorized on its ARN as given (a
		// policy may say Resource "*"), then not found, since streams are
		// looked up only in the caller's own account.
		if err := s.authorize(ctx, *ref.StreamARN, nil); err != nil {
			return nil, err
		}
		return nil, apierr.NotFound("stream %s is not found", *ref.StreamARN)
	}
	st, err := s.cfg.Archive.Index.StreamByName(ctx, account, name)
	if errors.Is(err, archive.ErrNotFound) || (err == nil && parts != nil &&
		(parts.CreatedMs != st.Created.UnixMilli() || parts.Region != st.Region)) {
		if err := s.authorizeStream(ctx, nil, name); err != nil {
			return nil, err
		}
		return nil, apierr.NotFound("The requested stream %s is not found or not active.", name)
	}
	if err != nil {
		return nil, apierr.Internal(err)
	}
	if err := s.authorizeStream(ctx, st, name); err != nil {
		return nil, err
	}
	if s.cfg.Limits != nil {
		if err := s.cfg.Limits.Stream(st.ID, authzFrom(ctx).action); err != nil {
			return nil, limitError(err)
		}
	}
	return st, nil
}

// namedStream reads a body that only names a stream and resolves it.
func (s *Server) namedStream(c *call) (*stream.Stream, error) {
	var in streamRef
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	return s.resolve(c.ctx, in)
}

// Pagination tokens are standard base64 of an opaque cursor, which satisfies
// both the control-plane and the archived-media token patterns.
func encodeToken(cursor string) string { return base64.StdEncoding.EncodeToString([]byte(cursor)) }

func decodeToken(field, tok string, max int) (string, error) {
	if err := checkPattern(field, tok, 1, max, reNextToken); err != nil {
		return "", err
	}
	b, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return "", apierr.InvalidArg("%s is not a token this server issued", field)
	}
	return string(b), nil
}

// encodeCursor makes a NextToken of a tag naming the operation and cursor
// version, and integers.
func encodeCursor(tag string, v ...int64) string {
	parts := []string{tag}
	for _, n := range v {
		parts = append(parts, strconv.FormatInt(n, 10))
	}
	return encodeToken(strings.Join(parts, ":"))
}

// decodeCursor reads a NextToken made by encodeCursor with the same tag and n integers.
func decodeCursor(tok, tag string, n int) ([]int64, error) {
	raw, err := decodeToken("NextToken", tok, 4096)
	if err != nil {
		return nil, err
	}
	bad := apierr.InvalidArg("NextToken is not a token this server issued")
	f := strings.Split(raw, ":")
	if len(f) != n+1 || f[0] != tag {
		return nil, bad
	}
	out := make([]int64, n)
	for i := range out {
		if out[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return nil, bad
		}
	}
	return out, nil
}
