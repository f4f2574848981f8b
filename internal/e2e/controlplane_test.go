package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/smithy-go"
)

// apiErr asserts err is an AWS API error of the given type and HTTP status.
func apiErr(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want %s, got %v", code, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("want error %s, got %s: %s", code, ae.ErrorCode(), ae.ErrorMessage())
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != status {
		t.Fatalf("%s: want HTTP %d, got %d", code, status, re.HTTPStatusCode())
	}
}

func TestControlPlaneWithGoSDK(t *testing.T) {
	s := startServer(t)
	kv := s.kv()
	ctx := ctxT(t)

	out, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{
		StreamName: aws.String("cam-1"), DeviceName: aws.String("dev-1"), MediaType: aws.String("video/h264,audio/aac"),
		DataRetentionInHours: aws.Int32(24), Tags: map[string]string{"site": "lobby"},
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.StreamARN)
	if !strings.HasPrefix(arn, "arn:aws:kinesisvideo:us-west-2:000000000000:stream/cam-1/") {
		t.Fatalf("ARN %s", arn)
	}
	_, err = kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-1")})
	apiErr(t, err, "ResourceInUseException", 400)

	d, err := kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	info := d.StreamInfo
	if aws.ToString(info.StreamName) != "cam-1" || info.Status != types.StatusActive || aws.ToInt32(info.DataRetentionInHours) != 24 ||
		aws.ToString(info.DeviceName) != "dev-1" || aws.ToString(info.MediaType) != "video/h264,audio/aac" ||
		info.CreationTime == nil || aws.ToString(info.Version) == "" || aws.ToString(info.KmsKeyId) == "" {
		t.Fatalf("StreamInfo %+v", info)
	}

	_, err = kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("nope")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{})
	apiErr(t, err, "InvalidArgumentException", 400)
	_, err = kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("bad name!")})
	apiErr(t, err, "InvalidArgumentException", 400)
	_, err = kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: aws.String(arn + "0")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// Update with a stale version, then with the current one.
	_, err = kv.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("cam-1"), CurrentVersion: aws.String("stale"), DeviceName: aws.String("dev-2")})
	apiErr(t, err, "VersionMismatchException", 400)
	_, err = kv.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("cam-1"), CurrentVersion: info.Version, DeviceName: aws.String("dev-2")})
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	if aws.ToString(d2.StreamInfo.DeviceName) != "dev-2" || aws.ToString(d2.StreamInfo.Version) == aws.ToString(info.Version) {
		t.Fatalf("update not applied or version unchanged: %+v", d2.StreamInfo)
	}

	// Retention changes are relative and bounded.
	_, err = kv.UpdateDataRetention(ctx, &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("cam-1"),
		CurrentVersion: d2.StreamInfo.Version, Operation: types.UpdateDataRetentionOperationIncreaseDataRetention, DataRetentionChangeInHours: aws.Int32(6)})
	if err != nil {
		t.Fatal(err)
	}
	d3, _ := kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	if aws.ToInt32(d3.StreamInfo.DataRetentionInHours) != 30 {
		t.Fatalf("retention %d, want 30", aws.ToInt32(d3.StreamInfo.DataRetentionInHours))
	}
	_, err = kv.UpdateDataRetention(ctx, &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("cam-1"),
		CurrentVersion: d3.StreamInfo.Version, Operation: types.UpdateDataRetentionOperationDecreaseDataRetention, DataRetentionChangeInHours: aws.Int32(31)})
	apiErr(t, err, "InvalidArgumentException", 400)
	_, err = kv.UpdateDataRetention(ctx, &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("cam-1"),
		CurrentVersion: d3.StreamInfo.Version, Operation: "SIDEWAYS", DataRetentionChangeInHours: aws.Int32(1)})
	apiErr(t, err, "InvalidArgumentException", 400)

	ep, err := kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("cam-1"), APIName: types.APINamePutMedia})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(ep.DataEndpoint) != s.URL {
		t.Fatalf("DataEndpoint %s, want %s", aws.ToString(ep.DataEndpoint), s.URL)
	}
	_, err = kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("cam-1"), APIName: "GET_EVERYTHING"})
	apiErr(t, err, "InvalidArgumentException", 400)

	// Tags, through both tagging APIs.
	if _, err := kv.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("cam-1"), Tags: map[string]string{"floor": "2", "site": "hall"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.UntagStream(ctx, &kinesisvideo.UntagStreamInput{StreamARN: aws.String(arn), TagKeyList: []string{"floor", "unknown"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.TagResource(ctx, &kinesisvideo.TagResourceInput{ResourceARN: aws.String(arn), Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("ops")}}}); err != nil {
		t.Fatal(err)
	}
	lt, err := kv.ListTagsForResource(ctx, &kinesisvideo.ListTagsForResourceInput{ResourceARN: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(lt.Tags) != "map[owner:ops site:hall]" {
		t.Fatalf("tags %v", lt.Tags)
	}
	if _, err := kv.UntagResource(ctx, &kinesisvideo.UntagResourceInput{ResourceARN: aws.String(arn), TagKeyList: []string{"owner"}}); err != nil {
		t.Fatal(err)
	}
	ls, err := kv.ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamName: aws.String("cam-1")})
	if err != nil || fmt.Sprint(ls.Tags) != "map[site:hall]" {
		t.Fatalf("tags %v, %v", ls.Tags, err)
	}
	many := map[string]string{}
	for i := 0; i < 50; i++ {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	_, err = kv.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("cam-1"), Tags: many})
	apiErr(t, err, "TagsPerResourceExceededLimitException", 400)
	_, err = kv.TagResource(ctx, &kinesisvideo.TagResourceInput{ResourceARN: aws.String("arn:aws:kinesisvideo:us-west-2:000000000000:channel/x/1"), Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}})
	if err == nil {
		t.Fatal("tagging a channel ARN should fail")
	}

	// Delete: gone at once, and the name is free again.
	_, err = kv.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String(arn), CurrentVersion: aws.String("stale")})
	apiErr(t, err, "VersionMismatchException", 400)
	if _, err := kv.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	_, err = kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	if _, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-1")}); err != nil {
		t.Fatalf("re-creating a deleted stream's name: %v", err)
	}
}

func TestCreateStreamValidation(t *testing.T) {
	s := startServer(t)
	kv := s.kv()
	ctx := ctxT(t)
	cases := []struct {
		name string
		in   kinesisvideo.CreateStreamInput
		code string
	}{
		{"name too long", kinesisvideo.CreateStreamInput{StreamName: aws.String(strings.Repeat("a", 257))}, "InvalidArgumentException"},
		{"name pattern", kinesisvideo.CreateStreamInput{StreamName: aws.String("a/b")}, "InvalidArgumentException"},
		{"retention negative", kinesisvideo.CreateStreamInput{StreamName: aws.String("a"), DataRetentionInHours: aws.Int32(-1)}, "InvalidArgumentException"},
		{"retention too long", kinesisvideo.CreateStreamInput{StreamName: aws.String("a"), DataRetentionInHours: aws.Int32(87601)}, "InvalidArgumentException"},
		{"media type", kinesisvideo.CreateStreamInput{StreamName: aws.String("a"), MediaType: aws.String("h264")}, "InvalidArgumentException"},
		{"device name", kinesisvideo.CreateStreamInput{StreamName: aws.String("a"), DeviceName: aws.String("dev 1")}, "InvalidArgumentException"},
		{"storage tier", kinesisvideo.CreateStreamInput{StreamName: aws.String("a"), StreamStorageConfiguration: &types.StreamStorageConfiguration{DefaultStorageTier: "COLD"}}, "InvalidArgumentException"},
		{"tag key", kinesisvideo.CreateStreamInput{StreamName: aws.String("a"), Tags: map[string]string{"bad<key>": "v"}}, "InvalidArgumentException"},
	}
	for _, c := range cases {
		_, err := kv.CreateStream(ctx, &c.in)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != c.code {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
		}
	}
	t.Logf("%d invalid CreateStream inputs rejected", len(cases))
}

func TestListStreamsPaginationAndPrefix(t *testing.T) {
	s := startServer(t)
	kv := s.kv()
	ctx := ctxT(t)
	for i := 0; i < 7; i++ {
		if _, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(fmt.Sprintf("lobby-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(fmt.Sprintf("garage-%d", i))})
	}
	var names []string
	p := kinesisvideo.NewListStreamsPaginator(kv, &kinesisvideo.ListStreamsInput{
		MaxResults:          aws.Int32(3),
		StreamNameCondition: &types.StreamNameCondition{ComparisonOperator: types.ComparisonOperatorBeginsWith, ComparisonValue: aws.String("lobby-")},
	})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, si := range page.StreamInfoList {
			names = append(names, aws.ToString(si.StreamName))
		}
	}
	if pages != 3 || strings.Join(names, ",") != "lobby-0,lobby-1,lobby-2,lobby-3,lobby-4,lobby-5,lobby-6" {
		t.Fatalf("%d pages: %v", pages, names)
	}
	all, err := kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	if err != nil || len(all.StreamInfoList) != 10 || all.NextToken != nil {
		t.Fatalf("all streams: %d, token %v, %v", len(all.StreamInfoList), all.NextToken, err)
	}
	_, err = kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(10001)})
	apiErr(t, err, "InvalidArgumentException", 400)
	_, err = kv.ListStreams(ctx, &kinesisvideo.ListStreamsInput{StreamNameCondition: &types.StreamNameCondition{ComparisonOperator: "ENDS_WITH", ComparisonValue: aws.String("x")}})
	apiErr(t, err, "InvalidArgumentException", 400)
}

func TestControlPlaneWithAWSCLI(t *testing.T) {
	s := startServer(t)
	out, errOut, err := s.awsCLI(t, "kinesisvideo", "create-stream", "--stream-name", "cli-cam", "--data-retention-in-hours", "2", "--media-type", "video/h264")
	if err != nil {
		t.Fatalf("create-stream: %v\n%s", err, errOut)
	}
	var created struct{ StreamARN string }
	json.Unmarshal([]byte(out), &created)
	if !strings.Contains(created.StreamARN, ":stream/cli-cam/") {
		t.Fatalf("create-stream output %s", out)
	}
	out, errOut, err = s.awsCLI(t, "kinesisvideo", "describe-stream", "--stream-name", "cli-cam")
	if err != nil || !strings.Contains(out, `"Status": "ACTIVE"`) {
		t.Fatalf("describe-stream: %v %s %s", err, out, errOut)
	}
	for i := 0; i < 4; i++ {
		s.awsCLI(t, "kinesisvideo", "create-stream", "--stream-name", fmt.Sprintf("cli-more-%d", i))
	}
	// The CLI pages through all of them itself, with a page size of 2.
	out, errOut, err = s.awsCLI(t, "kinesisvideo", "list-streams", "--page-size", "2")
	if err != nil {
		t.Fatalf("list-streams: %v %s", err, errOut)
	}
	var list struct{ StreamInfoList []struct{ StreamName string } }
	json.Unmarshal([]byte(out), &list)
	if len(list.StreamInfoList) != 5 {
		t.Fatalf("list-streams gave %d streams: %s", len(list.StreamInfoList), out)
	}
	out, _, err = s.awsCLI(t, "kinesisvideo", "get-data-endpoint", "--stream-name", "cli-cam", "--api-name", "GET_MEDIA")
	if err != nil || !strings.Contains(out, s.URL) {
		t.Fatalf("get-data-endpoint: %v %s", err, out)
	}
	if _, _, err := s.awsCLI(t, "kinesisvideo", "tag-stream", "--stream-name", "cli-cam", "--tags", "a=1,b=2"); err != nil {
		t.Fatal(err)
	}
	out, _, _ = s.awsCLI(t, "kinesisvideo", "list-tags-for-stream", "--stream-name", "cli-cam")
	if !strings.Contains(out, `"a": "1"`) {
		t.Fatalf("list-tags-for-stream: %s", out)
	}
	_, errOut, err = s.awsCLI(t, "kinesisvideo", "describe-stream", "--stream-name", "missing")
	if err == nil || !strings.Contains(errOut, "ResourceNotFoundException") {
		t.Fatalf("describe missing: %v %s", err, errOut)
	}
	_, errOut, err = s.awsCLI(t, "kinesisvideo", "delete-stream", "--stream-arn", created.StreamARN)
	if err != nil {
		t.Fatalf("delete-stream: %v %s", err, errOut)
	}
}

func TestUnsignedAndBadlySignedCallsAreRefused(t *testing.T) {
	s := startServer(t)
	resp, err := http.Post(s.URL+"/listStreams", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("x-amzn-ErrorType") == "" {
		t.Fatalf("unsigned call: %d %q", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"))
	}
	bad := sdkConfig()
	bad.Credentials = aws.NewCredentialsCache(staticCreds{testKey, "wrong-secret"})
	kv := kinesisvideo.NewFromConfig(bad, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(s.URL) })
	_, err = kv.ListStreams(ctxT(t), &kinesisvideo.ListStreamsInput{})
	apiErr(t, err, "InvalidSignatureException", 403)
	// Oversized JSON is refused before anything else.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/createStream", strings.NewReader(`{"StreamName":"`+strings.Repeat("a", 2<<20)+`"}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("2 MiB JSON body: HTTP %d", resp.StatusCode)
	}
	unknown := sdkConfig()
	unknown.Credentials = aws.NewCredentialsCache(staticCreds{"AKIDUNKNOWN", testSecret})
	kv = kinesisvideo.NewFromConfig(unknown, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(s.URL) })
	_, err = kv.ListStreams(ctxT(t), &kinesisvideo.ListStreamsInput{})
	apiErr(t, err, "UnrecognizedClientException", 403)
}
