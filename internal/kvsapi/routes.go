package kvsapi

import (
	"sort"
	"strings"

	"github.com/kinema/kinema/internal/admin"
	"github.com/kinema/kinema/internal/clipmeta"
)

// route is one operation: a JSON handler, or a raw one for operations that
// stream their request or response.
type route struct {
	op        string
	json      func(*Server, *call) (any, error)
	raw       func(*Server, *call) error
	streaming bool // the request body is not buffered before the signature check
	// action is the IAM action checked for the operation: "kinesisvideo:"
	// and the operation's name.
	action string
	// noResource: the operation acts on no stream and is authorized with
	// Resource "*" before its handler runs; every other operation is
	// authorized on its stream by resolve.
	noResource bool
	// long: the request may last for hours (PutMedia, GetMedia) and holds
	// one of the access key's connections while it does.
	long bool
	// accessDenied: refusals are AccessDeniedException (the newer
	// operations' models) rather than NotAuthorizedException.
	accessDenied bool
}

func routeTable() map[string]route {
	rs := []route{
		// control plane
		{op: "CreateStream", json: (*Server).createStream},
		{op: "DescribeStream", json: (*Server).describeStream},
		{op: "ListStreams", json: (*Server).listStreams, noResource: true},
		{op: "DeleteStream", json: (*Server).deleteStream},
		{op: "UpdateStream", json: (*Server).updateStream},
		{op: "UpdateDataRetention", json: (*Server).updateDataRetention},
		{op: "GetDataEndpoint", json: (*Server).getDataEndpoint},
		{op: "TagStream", json: (*Server).tagStream},
		{op: "UntagStream", json: (*Server).untagStream},
		{op: "ListTagsForStream", json: (*Server).listTagsForStream},
		{op: "TagResource", json: (*Server).tagResource, accessDenied: true},
		{op: "UntagResource", json: (*Server).untagResource, accessDenied: true},
		{op: "ListTagsForResource", json: (*Server).listTagsForResource, accessDenied: true},
		{op: "UpdateImageGenerationConfiguration", json: (*Server).updateImageGenerationConfiguration, accessDenied: true},
		{op: "DescribeImageGenerationConfiguration", json: (*Server).describeImageGenerationConfiguration, accessDenied: true},
		{op: "UpdateNotificationConfiguration", json: (*Server).updateNotificationConfiguration, accessDenied: true},
		{op: "DescribeNotificationConfiguration", json: (*Server).describeNotificationConfiguration, accessDenied: true},
		// Kinema's extension: the events timeline and the dead-letter list.
		{op: "ListEvents", json: (*Server).listEvents, accessDenied: true},
		{op: "RedriveEvents", json: (*Server).redriveEvents, accessDenied: true},
		// media
		{op: "PutMedia", raw: (*Server).putMedia, streaming: true, long: true},
		{op: "GetMedia", raw: (*Server).getMedia, long: true},
		// archived media
		{op: "ListFragments", json: (*Server).listFragments},
		{op: "GetMediaForFragmentList", raw: (*Server).getMediaForFragmentList},
		{op: "GetHLSStreamingSessionURL", json: (*Server).getHLSStreamingSessionURL},
		{op: "GetDASHStreamingSessionURL", json: (*Server).getDASHStreamingSessionURL},
		{op: "GetClip", raw: (*Server).getClip},
		{op: "GetImages", json: (*Server).getImages},
		// Kinema's extension: a time-lapse MP4 of a range, streamed.
		{op: "GetTimelapse", raw: (*Server).getTimelapse, accessDenied: true},
		// Kinema's extension: a GET URL for a clip of any length, with Range.
		{op: "GetClipSessionURL", json: (*Server).getClipSessionURL, accessDenied: true},
	}
	m := make(map[string]route, len(rs))
	for _, r := range rs {
		r.action = ActionPrefix + r.op
		m[path(r.op)] = r
	}
	// The admin API: each operation checks its own action on the entity
	// it names (admin.Call.Authorize).
	for _, op := range admin.Ops() {
		m[admin.PathPrefix+op.Name] = route{op: op.Name, action: op.Action, accessDenied: true,
			json: func(s *Server, c *call) (any, error) { return s.runAdmin(c, op) }}
	}
	return m
}

// ActionPrefix is the service prefix of every KVS action.
const ActionPrefix = "kinesisvideo:"

// Operation is one operation of the API and the IAM action that guards it.
type Operation struct {
	Name, Path, Action string
	// StreamResource reports that the action is checked on the stream's
	// ARN; otherwise on Resource "*".
	StreamResource bool
}

// Operations lists every operation routed by path, and the clip-metadata
// API's, with their actions: the table docs/security.md documents and the
// tests walk to prove every one is checked.
func Operations() []Operation {
	var out []Operation
	for p, r := range routeTable() {
		out = append(out, Operation{Name: r.op, Path: p, Action: r.action, StreamResource: !r.noResource && !strings.HasPrefix(p, admin.PathPrefix)})
	}
	for _, op := range clipMetaOps {
		out = append(out, Operation{Name: op.name, Path: clipmeta.Path, Action: op.action, StreamResource: op.stream})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Action < out[j].Action })
	return out
}

// path is the operation's URL path: lowerCamelCase, except the three generic
// tagging operations, which keep their PascalCase names.
func path(op string) string {
	switch op {
	case "TagResource", "UntagResource", "ListTagsForResource":
		return "/" + op
	}
	return "/" + string(op[0]+'a'-'A') + op[1:]
}
