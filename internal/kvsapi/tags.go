package kvsapi

import (
	"errors"
	"github.com/kinema/kinema/internal/apierr"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// setTags applies a tag change to a stream, mapping the 50-tag limit.
func (s *Server) setTags(c *call, st *stream.Stream, set map[string]string, remove []string) error {
	err := s.cfg.Archive.Index.TagStream(c.ctx, st.ID, set, remove, maxTags)
	if errors.Is(err, archive.ErrTooManyTags) {
		return apierr.New("TagsPerResourceExceededLimitException", "a stream may have at most %d tags", maxTags)
	}
	if err != nil {
		return apierr.Internal(err)
	}
	return nil
}

func checkTagKeys(keys []string) error {
	if len(keys) < 1 || len(keys) > maxTags {
		return apierr.InvalidArg("TagKeyList must hold 1 to %d keys; got %d", maxTags, len(keys))
	}
	for _, k := range keys {
		if err := checkPattern("tag key", k, 1, 128, reTag); err != nil {
			return err
		}
	}
	return nil
}

type tagStreamInput struct {
	streamRef
	Tags map[string]string `json:"Tags"`
}

func (s *Server) tagStream(c *call) (any, error) {
	var in tagStreamInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.Tags) == 0 {
		return nil, apierr.InvalidArg("Tags must hold 1 to %d tags", maxTags)
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	return nil, s.setTags(c, st, in.Tags, nil)
}

type untagStreamInput struct {
	streamRef
	TagKeyList []string `json:"TagKeyList"`
}

func (s *Server) untagStream(c *call) (any, error) {
	var in untagStreamInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := checkTagKeys(in.TagKeyList); err != nil {
		return nil, err
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	return nil, s.setTags(c, st, nil, in.TagKeyList)
}

type listTagsInput struct {
	streamRef
	ResourceARN *string `json:"ResourceARN"`
	NextToken   *string `json:"NextToken"`
}

// listTags answers both ListTagsForStream and ListTagsForResource: a stream
// has at most 50 tags, so one page always holds them all.
func (s *Server) listTags(c *call, st *stream.Stream, next *string) (any, error) {
	if next != nil {
		if err := checkPattern("NextToken", *next, 0, 512, reNextToken); err != nil {
			return nil, err
		}
	}
	tags, err := s.cfg.Archive.Index.StreamTags(c.ctx, st.ID)
	if err != nil {
		return nil, apierr.Internal(err)
	}
	return map[string]any{"Tags": tags}, nil
}

func (s *Server) listTagsForStream(c *call) (any, error) {
	var in listTagsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	return s.listTags(c, st, in.NextToken)
}

// resource resolves a ResourceARN; Kinema's only taggable resources are streams.
func (s *Server) resource(c *call, arn *string) (*stream.Stream, error) {
	if arn == nil {
		return nil, apierr.InvalidArg("ResourceARN is required")
	}
	if err := checkLen("ResourceARN", *arn, 1, 1024); err != nil {
		return nil, err
	}
	if !reStreamARN.MatchString(*arn) {
		return nil, apierr.New("InvalidResourceFormatException", "ResourceARN %q is not a stream ARN", *arn)
	}
	return s.resolve(c.ctx, streamRef{StreamARN: arn})
}

func (s *Server) listTagsForResource(c *call) (any, error) {
	var in listTagsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	st, err := s.resource(c, in.ResourceARN)
	if err != nil {
		return nil, err
	}
	return s.listTags(c, st, in.NextToken)
}

type tagResourceInput struct {
	ResourceARN *string `json:"ResourceARN"`
	Tags        []struct {
		Key   *string `json:"Key"`
		Value *string `json:"Value"`
	} `json:"Tags"`
}

func (s *Server) tagResource(c *call) (any, error) {
	var in tagResourceInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.Tags) < 1 || len(in.Tags) > maxTags {
		return nil, apierr.InvalidArg("Tags must hold 1 to %d tags; got %d", maxTags, len(in.Tags))
	}
	set := make(map[string]string, len(in.Tags))
	for _, t := range in.Tags {
		if t.Key == nil || t.Value == nil {
			return nil, apierr.InvalidArg("every tag needs a Key and a Value")
		}
		set[*t.Key] = *t.Value
	}
	if err := checkTags(set); err != nil {
		return nil, err
	}
	st, err := s.resource(c, in.ResourceARN)
	if err != nil {
		return nil, err
	}
	return nil, s.setTags(c, st, set, nil)
}

type untagResourceInput struct {
	ResourceARN *string  `json:"ResourceARN"`
	TagKeyList  []string `json:"TagKeyList"`
}

func (s *Server) untagResource(c *call) (any, error) {
	var in untagResourceInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := checkTagKeys(in.TagKeyList); err != nil {
		return nil, err
	}
	st, err := s.resource(c, in.ResourceARN)
	if err != nil {
		return nil, err
	}
	return nil, s.setTags(c, st, nil, in.TagKeyList)
}
