package sqlrows

import (
	"encoding/binary"
	"errors"

	"github.com/kinema/kinema/internal/stream"
)

// Fragment tags are stored as one small blob per fragment: uvarint count,
// then uvarint-length-prefixed name and value for each. It keeps the common
// untagged fragment at zero bytes and a tagged one at the tags' own size.

// EncodeTags encodes a fragment's tags; no tags encode as nil.
func EncodeTags(tags []stream.Tag) []byte {
	if len(tags) == 0 {
		return nil
	}
	b := binary.AppendUvarint(nil, uint64(len(tags)))
	for _, t := range tags {
		b = binary.AppendUvarint(b, uint64(len(t.Name)))
		b = append(b, t.Name...)
		b = binary.AppendUvarint(b, uint64(len(t.Value)))
		b = append(b, t.Value...)
	}
	return b
}

var errBadTags = errors.New("corrupt fragment tags")

// DecodeTags is the inverse of EncodeTags.
func DecodeTags(b []byte) ([]stream.Tag, error) {
	if len(b) == 0 {
		return nil, nil
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errBadTags
	}
	b = b[k:]
	tags := make([]stream.Tag, 0, n)
	next := func() (string, error) {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return "", errBadTags
		}
		s := string(b[k : k+int(l)])
		b = b[k+int(l):]
		return s, nil
	}
	for i := uint64(0); i < n; i++ {
		name, err := next()
		if err != nil {
			return nil, err
		}
		value, err := next()
		if err != nil {
			return nil, err
		}
		tags = append(tags, stream.Tag{Name: name, Value: value})
	}
	return tags, nil
}
