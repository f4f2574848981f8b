package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kinema/kinema/internal/media/mkv"
)

// emptyPayloadHash is sha256(""): PutMedia's body is not signed.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// target is where a PutMedia goes and what it may expect back.
type target struct {
	dataEndpoint   string
	retentionHours int // -1 when unknown (DescribeStream was not called)
}

func (c *Config) credentials() aws.Credentials {
	return aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
}

func (c *Config) controlClient() *kinesisvideo.Client {
	var creds aws.CredentialsProvider = aws.AnonymousCredentials{}
	if c.AccessKeyID != "" {
		cr := c.credentials()
		creds = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return cr, nil })
	}
	return kinesisvideo.New(kinesisvideo.Options{
		Region:           c.Region,
		BaseEndpoint:     aws.String(c.Endpoint),
		Credentials:      creds,
		HTTPClient:       c.HTTPClient,
		RetryMaxAttempts: 3,
	})
}

// resolve does what the SDK does before PutMedia: DescribeStream, then
// CreateStream on a 404 when allowed, then GetDataEndpoint(PUT_MEDIA).
// mediaType ("video/h264,audio/aac") goes into CreateStream.
func (c *Config) resolve(ctx context.Context, mediaType string) (target, error) {
	t := target{dataEndpoint: c.DataEndpoint, retentionHours: -1}
	kv := c.controlClient()
	name := aws.String(c.StreamName)
	out, err := kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: name})
	switch {
	case err == nil:
		if out.StreamInfo != nil && out.StreamInfo.DataRetentionInHours != nil {
			t.retentionHours = int(*out.StreamInfo.DataRetentionInHours)
		}
	case isNotFound(err) && c.CreateStream:
		in := &kinesisvideo.CreateStreamInput{
			StreamName:           name,
			DataRetentionInHours: aws.Int32(int32(c.RetentionHours)),
			DeviceName:           aws.String("kinema-producer"),
		}
		if mediaType != "" {
			in.MediaType = aws.String(mediaType)
		}
		_, err := kv.CreateStream(ctx, in)
		var inUse *types.ResourceInUseException
		switch {
		case errors.As(err, &inUse):
			// Created meanwhile by someone else: theirs it is.
			if out, err := kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: name}); err == nil &&
				out.StreamInfo != nil && out.StreamInfo.DataRetentionInHours != nil {
				t.retentionHours = int(*out.StreamInfo.DataRetentionInHours)
			}
		case err != nil:
			return t, fmt.Errorf("producer: CreateStream %s: %w", c.StreamName, err)
		default:
			t.retentionHours = c.RetentionHours
		}
	case isNotFound(err):
		return t, fmt.Errorf("producer: stream %q does not exist (create it first, or let the producer create it: --create): %w", c.StreamName, err)
	default:
		return t, fmt.Errorf("producer: DescribeStream %s at %s: %w", c.StreamName, c.Endpoint, err)
	}
	if t.dataEndpoint == "" {
		ep, err := kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{StreamName: name, APIName: types.APINamePutMedia})
		if err != nil {
			return t, fmt.Errorf("producer: GetDataEndpoint %s: %w", c.StreamName, err)
		}
		if ep.DataEndpoint == nil || *ep.DataEndpoint == "" {
			return t, errors.New("producer: GetDataEndpoint returned no DataEndpoint")
		}
		t.dataEndpoint = strings.TrimRight(*ep.DataEndpoint, "/")
	}
	return t, nil
}

func isNotFound(err error) bool {
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// mediaTypeOf names the tracks as the SDK's CreateStream does.
func mediaTypeOf(h mkv.Header) string {
	var types []string
	for _, t := range h.Tracks {
		switch t.CodecID {
		case CodecH264:
			types = append(types, "video/h264")
		case CodecH265:
			types = append(types, "video/h265")
		case CodecAAC:
			types = append(types, "audio/aac")
		}
	}
	return strings.Join(types, ",")
}

// newPutMedia builds the signed PutMedia request with the SDK's headers;
// extra replaces them one by one (an empty value list removes a header).
// The body is sent chunked, as the SDK sends it.
func (c *Config) newPutMedia(ctx context.Context, dataEndpoint string, body io.Reader, extra http.Header) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dataEndpoint+"/putMedia", body)
	if err != nil {
		return nil, fmt.Errorf("producer: data endpoint %q: %w", dataEndpoint, err)
	}
	req.ContentLength = -1 // unknown: chunked
	h := req.Header
	h.Set("x-amzn-stream-name", c.StreamName)
	h.Set("x-amzn-fragment-timecode-type", c.TimecodeType)
	h.Set("x-amzn-producer-start-timestamp", FormatStartTimestamp(c.StartTime))
	h.Set("x-amzn-fragment-acknowledgment-required", "1")
	h.Set("Content-Type", "application/json") // sic: the SDK labels the MKV body so
	h.Set("User-Agent", c.UserAgent)
	for k, v := range extra {
		if len(v) == 0 {
			h.Del(k)
		} else {
			h[http.CanonicalHeaderKey(k)] = v
		}
	}
	if c.AccessKeyID == "" {
		return req, nil
	}
	// The aws signer leaves Transfer-Encoding out of the signature (the SDK
	// signs it); servers accept both, as they must for the Go SDK anyway.
	err = v4.NewSigner().SignHTTP(ctx, c.credentials(), req, emptyPayloadHash, "kinesisvideo", c.Region, time.Now())
	if err != nil {
		return nil, fmt.Errorf("producer: signing PutMedia: %w", err)
	}
	return req, nil
}

// httpError describes a non-200 answer to PutMedia from its status, its
// x-amzn-ErrorType and the message of its JSON body.
func httpError(resp *http.Response) (errType, msg string) {
	errType = resp.Header.Get("x-amzn-ErrorType")
	if i := strings.IndexByte(errType, ':'); i >= 0 {
		errType = errType[:i]
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg = strings.TrimSpace(string(b))
	var body struct{ Message string } // matches "message" and "Message"
	if json.Unmarshal(b, &body) == nil && body.Message != "" {
		msg = body.Message
	}
	return errType, msg
}
