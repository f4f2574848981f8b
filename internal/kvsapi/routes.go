package kvsapi

// route is one operation: a JSON handler, or a raw one for operations that
// stream their request or response.
type route struct {
	op        string
	json      func(*Server, *call) (any, error)
	raw       func(*Server, *call) error
	streaming bool // the request body is not buffered before the signature check
}

func routeTable() map[string]route {
	rs := []route{
		// control plane
		{op: "CreateStream", json: (*Server).createStream},
		{op: "DescribeStream", json: (*Server).describeStream},
		{op: "ListStreams", json: (*Server).listStreams},
		{op: "DeleteStream", json: (*Server).deleteStream},
		{op: "UpdateStream", json: (*Server).updateStream},
		{op: "UpdateDataRetention", json: (*Server).updateDataRetention},
		{op: "GetDataEndpoint", json: (*Server).getDataEndpoint},
		{op: "TagStream", json: (*Server).tagStream},
		{op: "UntagStream", json: (*Server).untagStream},
		{op: "ListTagsForStream", json: (*Server).listTagsForStream},
		{op: "TagResource", json: (*Server).tagResource},
		{op: "UntagResource", json: (*Server).untagResource},
		{op: "ListTagsForResource", json: (*Server).listTagsForResource},
		{op: "UpdateNotificationConfiguration", json: (*Server).updateNotificationConfiguration},
		{op: "DescribeNotificationConfiguration", json: (*Server).describeNotificationConfiguration},
		// Kinema's extension: the events timeline and the dead-letter list.
		{op: "ListEvents", json: (*Server).listEvents},
		{op: "RedriveEvents", json: (*Server).redriveEvents},
		// media
		{op: "PutMedia", raw: (*Server).putMedia, streaming: true},
		{op: "GetMedia", raw: (*Server).getMedia},
		// archived media
		{op: "ListFragments", json: (*Server).listFragments},
		{op: "GetMediaForFragmentList", raw: (*Server).getMediaForFragmentList},
		{op: "GetHLSStreamingSessionURL", json: (*Server).getHLSStreamingSessionURL},
		{op: "GetDASHStreamingSessionURL", json: (*Server).getDASHStreamingSessionURL},
		{op: "GetClip", raw: (*Server).getClip},
		// Kinema's extension: a GET URL for a clip of any length, with Range.
		{op: "GetClipSessionURL", json: (*Server).getClipSessionURL},
	}
	m := make(map[string]route, len(rs))
	for _, r := range rs {
		m[path(r.op)] = r
	}
	return m
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
