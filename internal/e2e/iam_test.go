package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	"github.com/aws/smithy-go"

	"github.com/kinema/kinema/internal/admin"
	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/iotcreds"
	"github.com/kinema/kinema/internal/kvsapi"
	"github.com/kinema/kinema/internal/limits"
)

// matrix counts the cases of an authorization matrix by client, so the test
// output says how much was exercised.
type matrix struct {
	t      *testing.T
	mu     sync.Mutex
	counts map[string]int
}

func newMatrix(t *testing.T) *matrix { return &matrix{t: t, counts: map[string]int{}} }

// expect records one case: client did what and got code ("" = success),
// wanting want.
func (m *matrix) expect(client, what, code, want string) {
	m.t.Helper()
	if code != want {
		if want == "" {
			want = "success"
		}
		if code == "" {
			code = "success"
		}
		m.t.Errorf("[%s] %s: got %s, want %s", client, what, code, want)
	}
	m.mu.Lock()
	m.counts[client]++
	m.mu.Unlock()
}

func (m *matrix) report(name string) {
	total := 0
	var parts []string
	for _, c := range []string{"aws-cli", "go-sdk-v2", "signed-http", "kinema-admin", "kinema-put"} {
		total += m.counts[c]
		if m.counts[c] > 0 {
			parts = append(parts, c+"="+itoa(m.counts[c]))
		}
	}
	m.t.Logf("%s: %d cases (%s)", name, total, strings.Join(parts, ", "))
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// sdkCode is the AWS error code of an SDK call's error ("" for success).
func sdkCode(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "error: " + err.Error()
}

var reCLIError = regexp.MustCompile(`An error occurred \(([A-Za-z]+)\)`)

// cliCode is the AWS error code the AWS CLI reported ("" for success).
func cliCode(stderr string, err error) string {
	if err == nil {
		return ""
	}
	if m := reCLIError.FindStringSubmatch(stderr); m != nil {
		return m[1]
	}
	return "error: " + strings.TrimSpace(stderr)
}

type iamEnv struct {
	s     *server
	clock atomic.Int64 // IAM clock offset in ns
	root  aws.Credentials
}

// startIAMServer runs a server pinned to testRegion whose IAM clock can be
// moved forward.
func startIAMServer(t *testing.T, mods ...func(*app.Config)) *iamEnv {
	e := &iamEnv{root: aws.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret}}
	e.s = startServer(t, append([]func(*app.Config){func(c *app.Config) {
		c.Region = testRegion
		c.IAMClock = func() time.Time { return time.Now().Add(time.Duration(e.clock.Load())) }
	}}, mods...)...)
	return e
}

// admin runs the real `kinema admin` binary against the server.
func (e *iamEnv) admin(t *testing.T, creds aws.Credentials, args ...string) (map[string]any, string, error) {
	t.Helper()
	cmd := exec.Command(kinemaBinary(t), append(append([]string{"admin"}, args...), "--endpoint", e.s.URL, "--region", testRegion)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey,
		"AWS_SESSION_TOKEN="+creds.SessionToken)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := map[string]any{}
	if err == nil {
		if jerr := json.Unmarshal([]byte(out.String()), &res); jerr != nil {
			t.Fatalf("kinema admin %v: output is not JSON: %v\n%s", args, jerr, out.String())
		}
	}
	return res, errb.String(), err
}

// mustAdmin runs `kinema admin` as root and fails the test on error.
func (e *iamEnv) mustAdmin(t *testing.T, args ...string) map[string]any {
	t.Helper()
	res, stderr, err := e.admin(t, e.root, args...)
	if err != nil {
		t.Fatalf("kinema admin %v: %v\n%s", args, err, stderr)
	}
	return res
}

var reAdminError = regexp.MustCompile(`: ([A-Za-z]+Exception) \(HTTP`)

func adminCode(stderr string, err error) string {
	if err == nil {
		return ""
	}
	if m := reAdminError.FindStringSubmatch(stderr); m != nil {
		return m[1]
	}
	return "error: " + stderr
}

// newKey makes a user with the given policy attached and returns its key.
func (e *iamEnv) newKey(t *testing.T, account, user, policyName, doc string) aws.Credentials {
	t.Helper()
	acct := []string{}
	if account != "" {
		acct = []string{"--account", account}
	}
	e.mustAdmin(t, append([]string{"user", "create", "--user", user}, acct...)...)
	if doc != "" {
		e.mustAdmin(t, append([]string{"policy", "put", "--policy", policyName, "--document", doc}, acct...)...)
		e.mustAdmin(t, append([]string{"policy", "attach", "--policy", policyName, "--user", user}, acct...)...)
	}
	res := e.mustAdmin(t, append([]string{"key", "create", "--user", user}, acct...)...)
	k := res["AccessKey"].(map[string]any)
	return aws.Credentials{AccessKeyID: k["AccessKeyId"].(string), SecretAccessKey: k["SecretAccessKey"].(string)}
}

func (e *iamEnv) kv(creds aws.Credentials) *kinesisvideo.Client {
	cfg := sdkConfig()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
	return kinesisvideo.NewFromConfig(cfg, func(o *kinesisvideo.Options) { o.BaseEndpoint = aws.String(e.s.URL) })
}

func (e *iamEnv) archived(creds aws.Credentials) *kinesisvideoarchivedmedia.Client {
	cfg := sdkConfig()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
	return kinesisvideoarchivedmedia.NewFromConfig(cfg, func(o *kinesisvideoarchivedmedia.Options) { o.BaseEndpoint = aws.String(e.s.URL) })
}

// putCode sends a short PutMedia to stream as creds and reports the error
// type ("" when it was accepted and every fragment PERSISTED).
func (e *iamEnv) putCode(t *testing.T, creds aws.Credentials, stream string) string {
	t.Helper()
	ts := uint64(time.Now().Add(-time.Minute).UnixMilli())
	res := putMediaAs(t, e.s.URL, creds, absolute(stream), (&mkvBuilder{}).header().cluster(ts, 3, 10).eofr().reader(), nil)
	if res.status != 200 {
		return res.errType
	}
	if res.count("PERSISTED") != 1 {
		return "no PERSISTED ack"
	}
	return ""
}

// rawCode sends a signed JSON call and returns its error type.
func rawCode(t *testing.T, baseURL string, creds aws.Credentials, op, body string) string {
	t.Helper()
	resp, b := signedCallAs(t, baseURL, creds, http.MethodPost, op, body, time.Now(), testRegion)
	if resp.StatusCode == 200 {
		return ""
	}
	t.Logf("%s: %s", op, b)
	return resp.Header.Get("x-amzn-ErrorType")
}

const (
	devicePolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"arn:aws:kinesisvideo:*:*:stream/cam-1/*"}]}`
	viewerPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesisvideo:Describe*","kinesisvideo:List*","kinesisvideo:Get*"],"Resource":"*"}]}`
	lobbyPolicy  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesisvideo:DescribeStream","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/site":"lobby"}}}]}`
	closedWindow = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesisvideo:ListStreams","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}]}`
	adminPolicy  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
)

// The authorization matrix of issue 6, against the real server with the AWS
// CLI, the AWS SDK for Go v2, signed HTTP (the producer SDK's PutMedia) and
// the `kinema admin` binary.
func TestIAMMatrix(t *testing.T) {
	e := startIAMServer(t)
	m := newMatrix(t)
	ctx := ctxT(t)
	root := e.kv(e.root)

	// Streams of the default account; cam-1 is tagged site=lobby.
	cam1, err := root.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-1"), DataRetentionInHours: aws.Int32(1), Tags: map[string]string{"site": "lobby"}})
	if err != nil {
		t.Fatal(err)
	}
	cam2, err := root.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-2"), DataRetentionInHours: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}

	device := e.newKey(t, "", "device-1", "device-cam1", devicePolicy)
	viewer := e.newKey(t, "", "viewer", "viewer", viewerPolicy)
	lobby := e.newKey(t, "", "lobby-viewer", "lobby", lobbyPolicy)
	late := e.newKey(t, "", "late", "closed-window", closedWindow)

	// A device key may PutMedia to cam-1 and do nothing else.
	m.expect("signed-http", "device PutMedia cam-1", e.putCode(t, device, "cam-1"), "")
	m.expect("signed-http", "device PutMedia cam-2", e.putCode(t, device, "cam-2"), "NotAuthorizedException")
	m.expect("signed-http", "device PutMedia to a stream that does not exist", e.putCode(t, device, "cam-9"), "NotAuthorizedException")
	m.expect("signed-http", "device GetImages cam-1", rawCode(t, e.s.URL, device, "getImages",
		`{"StreamName":"cam-1","ImageSelectorType":"SERVER_TIMESTAMP","StartTimestamp":1,"EndTimestamp":2,"Format":"JPEG"}`), "NotAuthorizedException")
	m.expect("signed-http", "device GetMedia cam-1", rawCode(t, e.s.URL, device, "getMedia", `{"StreamName":"cam-1","StartSelector":{"StartSelectorType":"EARLIEST"}}`), "NotAuthorizedException")
	_, err = e.kv(device).DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: cam1.StreamARN})
	m.expect("go-sdk-v2", "device DeleteStream cam-1", sdkCode(err), "NotAuthorizedException")
	_, err = e.kv(device).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	m.expect("go-sdk-v2", "device DescribeStream cam-1", sdkCode(err), "NotAuthorizedException")
	_, err = e.archived(device).ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam-1")})
	m.expect("go-sdk-v2", "device ListFragments cam-1", sdkCode(err), "NotAuthorizedException")
	_, stderr, err := e.s.awsCLIAs(t, device, "kinesisvideo", "list-streams")
	m.expect("aws-cli", "device list-streams", cliCode(stderr, err), "NotAuthorizedException")
	_, stderr, err = e.s.awsCLIAs(t, device, "kinesisvideo", "delete-stream", "--stream-arn", *cam1.StreamARN)
	m.expect("aws-cli", "device delete-stream cam-1", cliCode(stderr, err), "NotAuthorizedException")
	_, stderr, err = e.s.awsCLIAs(t, device, "kinesisvideo", "tag-stream", "--stream-name", "cam-1", "--tags", "a=b")
	m.expect("aws-cli", "device tag-stream cam-1", cliCode(stderr, err), "NotAuthorizedException")
	_, stderr, err = e.admin(t, device, "user", "create", "--user", "intruder")
	m.expect("kinema-admin", "device creates a user", adminCode(stderr, err), "AccessDeniedException")
	_, stderr, err = e.admin(t, device, "key", "create", "--user", "device-1")
	m.expect("kinema-admin", "device makes itself another key", adminCode(stderr, err), "AccessDeniedException")
	_, stderr, err = e.admin(t, device, "policy", "attach", "--policy", "viewer", "--user", "device-1")
	m.expect("kinema-admin", "device attaches itself a policy", adminCode(stderr, err), "AccessDeniedException")

	// A viewer key reads but does not write.
	_, stderr, err = e.s.awsCLIAs(t, viewer, "kinesisvideo", "list-streams")
	m.expect("aws-cli", "viewer list-streams", cliCode(stderr, err), "")
	_, stderr, err = e.s.awsCLIAs(t, viewer, "kinesisvideo", "describe-stream", "--stream-name", "cam-2")
	m.expect("aws-cli", "viewer describe-stream cam-2", cliCode(stderr, err), "")
	_, err = e.archived(viewer).ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam-1")})
	m.expect("go-sdk-v2", "viewer ListFragments cam-1", sdkCode(err), "")
	_, err = e.kv(viewer).GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("cam-1"), APIName: "GET_MEDIA"})
	m.expect("go-sdk-v2", "viewer GetDataEndpoint cam-1", sdkCode(err), "")
	_, err = e.kv(viewer).ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamName: aws.String("cam-1")})
	m.expect("go-sdk-v2", "viewer ListTagsForStream cam-1", sdkCode(err), "")
	m.expect("signed-http", "viewer PutMedia cam-1", e.putCode(t, viewer, "cam-1"), "NotAuthorizedException")
	_, err = e.kv(viewer).CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("viewer-made")})
	m.expect("go-sdk-v2", "viewer CreateStream", sdkCode(err), "NotAuthorizedException")
	_, err = e.kv(viewer).TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("cam-1"), Tags: map[string]string{"a": "b"}})
	m.expect("go-sdk-v2", "viewer TagStream cam-1", sdkCode(err), "NotAuthorizedException")
	_, stderr, err = e.s.awsCLIAs(t, viewer, "kinesisvideo", "delete-stream", "--stream-arn", *cam2.StreamARN)
	m.expect("aws-cli", "viewer delete-stream cam-2", cliCode(stderr, err), "NotAuthorizedException")
	_, stderr, err = e.s.awsCLIAs(t, viewer, "kinesisvideo", "update-data-retention", "--stream-name", "cam-1",
		"--current-version", "x", "--operation", "INCREASE_DATA_RETENTION", "--data-retention-change-in-hours", "1")
	m.expect("aws-cli", "viewer update-data-retention cam-1", cliCode(stderr, err), "NotAuthorizedException")

	// Conditions on stream tags and on time.
	_, err = e.kv(lobby).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	m.expect("go-sdk-v2", "lobby viewer DescribeStream cam-1 (site=lobby)", sdkCode(err), "")
	_, err = e.kv(lobby).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-2")})
	m.expect("go-sdk-v2", "lobby viewer DescribeStream cam-2 (untagged)", sdkCode(err), "NotAuthorizedException")
	_, stderr, err = e.s.awsCLIAs(t, late, "kinesisvideo", "list-streams")
	m.expect("aws-cli", "list-streams outside the policy's time window", cliCode(stderr, err), "NotAuthorizedException")

	// An account cannot see another account's streams, even with "*".
	tenant := e.mustAdmin(t, "account", "create", "--name", "tenant-b")["Account"].(map[string]any)
	tenantID := tenant["Id"].(string)
	tadmin := e.newKey(t, "tenant-b", "admin", "admin", adminPolicy)
	out, err := e.kv(tadmin).CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-1"), DataRetentionInHours: aws.Int32(1)})
	m.expect("go-sdk-v2", "tenant creates its own cam-1", sdkCode(err), "")
	if err == nil && !strings.Contains(*out.StreamARN, ":"+tenantID+":stream/cam-1/") {
		t.Errorf("tenant stream ARN %s does not carry the account id %s", *out.StreamARN, tenantID)
	}
	stdout, stderr, err := e.s.awsCLIAs(t, tadmin, "kinesisvideo", "list-streams")
	m.expect("aws-cli", "tenant list-streams", cliCode(stderr, err), "")
	if strings.Contains(stdout, "cam-2") || strings.Contains(stdout, *cam1.StreamARN) {
		t.Errorf("tenant lists the default account's streams:\n%s", stdout)
	}
	_, err = e.kv(tadmin).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-2")})
	m.expect("go-sdk-v2", "tenant DescribeStream of the other account's cam-2", sdkCode(err), "ResourceNotFoundException")
	_, err = e.kv(tadmin).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: cam1.StreamARN})
	m.expect("go-sdk-v2", "tenant DescribeStream by the other account's ARN", sdkCode(err), "ResourceNotFoundException")
	_, stderr, err = e.s.awsCLIAs(t, tadmin, "kinesisvideo", "delete-stream", "--stream-arn", *cam2.StreamARN)
	m.expect("aws-cli", "tenant delete-stream of the other account's cam-2", cliCode(stderr, err), "ResourceNotFoundException")
	m.expect("signed-http", "tenant PutMedia lands in its own cam-1", e.putCode(t, tadmin, "cam-1"), "")
	_, stderr, err = e.admin(t, tadmin, "user", "list", "--account", "default")
	m.expect("kinema-admin", "tenant admin lists the default account's users", adminCode(stderr, err), "AccessDeniedException")
	// Clip metadata: each account's clientIDs are its own. The default
	// account records a clip of its cam-1 for client "app"; the tenant,
	// with the same clientID, device and times on its own cam-1, gets its
	// own record, and sees only its own.
	clipBody := func(begin int64) string {
		return `{"clientID":"app","deviceID":"d1","streamName":"cam-1","begTime":` + itoa(int(begin)) + `,"endTime":` + itoa(int(begin+10000)) + `,"duration":10}`
	}
	clipAt := time.Now().Add(-time.Hour).UnixMilli()
	var rootClip, tenantClip struct{ ClipID, ClientID string }
	resp, b := signedCallAs(t, e.s.URL, e.root, http.MethodPut, "ipc-video-metadata", clipBody(clipAt), time.Now(), testRegion)
	m.expect("signed-http", "default account PUTs a clip", errType(resp), "")
	json.Unmarshal(b, &rootClip)
	resp, b = signedCallAs(t, e.s.URL, tadmin, http.MethodPut, "ipc-video-metadata", clipBody(clipAt), time.Now(), testRegion)
	m.expect("signed-http", "tenant PUTs the same clip key", errType(resp), "")
	json.Unmarshal(b, &tenantClip)
	if tenantClip.ClientID != "app" || tenantClip.ClipID == "" || tenantClip.ClipID == rootClip.ClipID {
		t.Errorf("tenant clip %+v, default account's %+v: want clientID app and distinct ids", tenantClip, rootClip)
	}
	resp, b = signedCallAs(t, e.s.URL, tadmin, http.MethodGet, "ipc-video-metadata/clips", `{"clientID":"app"}`, time.Now(), testRegion)
	m.expect("signed-http", "tenant lists its clips", errType(resp), "")
	if strings.Count(string(b), `"clipID"`) != 1 || !strings.Contains(string(b), tenantClip.ClipID) {
		t.Errorf("tenant's listing: %s", b)
	}
	resp, _ = signedCallAs(t, e.s.URL, tadmin, http.MethodDelete, "ipc-video-metadata", `{"clientID":"app","clipID":"`+rootClip.ClipID+`"}`, time.Now(), testRegion)
	m.expect("signed-http", "tenant deletes the default account's clip by id", errType(resp), "ResourceNotFoundException")
	resp, b = signedCallAs(t, e.s.URL, e.root, http.MethodGet, "ipc-video-metadata/clips", `{"clientID":"app"}`, time.Now(), testRegion)
	if strings.Count(string(b), `"clipID"`) != 1 || !strings.Contains(string(b), rootClip.ClipID) {
		t.Errorf("default account's listing after the tenant's attempts: %s", b)
	}
	_, stderr, err = e.admin(t, tadmin, "account", "create", "--name", "tenant-c")
	m.expect("kinema-admin", "tenant admin creates an account", adminCode(stderr, err), "AccessDeniedException")
	_, stderr, err = e.admin(t, tadmin, "user", "create", "--user", "ops")
	m.expect("kinema-admin", "tenant admin creates a user in its own account", adminCode(stderr, err), "")
	if _, err := root.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-2")}); err != nil {
		t.Errorf("cam-2 after the tenant's attempts: %v", err)
	}

	// A disabled key is refused; enabled again, it works.
	e.mustAdmin(t, "key", "disable", "--key", viewer.AccessKeyID)
	_, err = e.kv(viewer).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	m.expect("go-sdk-v2", "disabled key ListStreams", sdkCode(err), "UnrecognizedClientException")
	_, stderr, err = e.s.awsCLIAs(t, viewer, "kinesisvideo", "list-streams")
	m.expect("aws-cli", "disabled key list-streams", cliCode(stderr, err), "UnrecognizedClientException")
	e.mustAdmin(t, "key", "enable", "--key", viewer.AccessKeyID)
	_, err = e.kv(viewer).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	m.expect("go-sdk-v2", "re-enabled key ListStreams", sdkCode(err), "")

	// Rotation: a new key works at once, the old one is disabled; deleted
	// keys and keys of deleted users are refused.
	rot := e.mustAdmin(t, "key", "rotate", "--key", viewer.AccessKeyID)["AccessKey"].(map[string]any)
	viewer2 := aws.Credentials{AccessKeyID: rot["AccessKeyId"].(string), SecretAccessKey: rot["SecretAccessKey"].(string)}
	_, stderr, err = e.s.awsCLIAs(t, viewer2, "kinesisvideo", "list-streams")
	m.expect("aws-cli", "rotated key list-streams", cliCode(stderr, err), "")
	_, err = e.kv(viewer).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	m.expect("go-sdk-v2", "the key rotated out", sdkCode(err), "UnrecognizedClientException")
	e.mustAdmin(t, "key", "delete", "--key", viewer.AccessKeyID)
	keys := e.mustAdmin(t, "key", "list", "--user", "viewer")["AccessKeyMetadata"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["AccessKeyId"] != viewer2.AccessKeyID {
		t.Errorf("keys of viewer after rotation and deletion: %v", keys)
	}
	e.mustAdmin(t, "user", "delete", "--user", "lobby-viewer")
	_, err = e.kv(lobby).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	m.expect("go-sdk-v2", "key of a deleted user", sdkCode(err), "UnrecognizedClientException")
	viewer = viewer2

	// Tampered, replayed, wrong-region and unknown-key requests.
	resp, _ = signedCallAs(t, e.s.URL, viewer, http.MethodPost, "listStreams", `{}`, time.Now(), testRegion)
	m.expect("signed-http", "well-signed control", errType(resp), "")
	m.expect("signed-http", "tampered signature", tamperedCall(t, e.s.URL, viewer), "InvalidSignatureException")
	resp, _ = signedCallAs(t, e.s.URL, viewer, http.MethodPost, "listStreams", `{}`, time.Now().Add(-6*time.Minute), testRegion)
	m.expect("signed-http", "replay outside the 5-minute skew window", errType(resp), "InvalidSignatureException")
	resp, _ = signedCallAs(t, e.s.URL, viewer, http.MethodPost, "listStreams", `{}`, time.Now(), "eu-west-1")
	m.expect("signed-http", "signed for another region", errType(resp), "InvalidSignatureException")
	_, stderr, err = e.s.awsCLIAs(t, viewer, "kinesisvideo", "list-streams", "--region", "eu-west-1")
	m.expect("aws-cli", "list-streams signed for another region", cliCode(stderr, err), "InvalidSignatureException")
	resp, _ = signedCallAs(t, e.s.URL, aws.Credentials{AccessKeyID: "AKIANOSUCHKEY0000000", SecretAccessKey: "x"}, http.MethodPost, "listStreams", `{}`, time.Now(), testRegion)
	m.expect("signed-http", "unknown access key", errType(resp), "UnrecognizedClientException")

	m.report("IAM matrix")

	// Denials and admin actions are in the audit log.
	b, err = os.ReadFile(filepath.Join(e.s.dir, iam.AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, want := range []string{`"kind":"deny"`, `"action":"kinesisvideo:PutMedia"`, `"action":"iam:CreateUser"`, `"kind":"admin"`,
		`"action":"kinema:CreateAccount"`, `"result":"InvalidSignatureException"`, `"result":"UnrecognizedClientException"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if strings.Contains(log, device.SecretAccessKey) {
		t.Error("the audit log holds a secret access key")
	}
}

func errType(resp *http.Response) string {
	if resp.StatusCode == 200 {
		return ""
	}
	return resp.Header.Get("x-amzn-ErrorType")
}

// tamperedCall signs a call, flips one hex digit of its signature and sends
// it.
func tamperedCall(t *testing.T, baseURL string, creds aws.Credentials) string {
	t.Helper()
	req := signedRequest(t, baseURL, creds, http.MethodPost, "listStreams", `{}`, time.Now(), testRegion)
	h := req.Header.Get("Authorization")
	last := h[len(h)-1]
	flip := byte('0')
	if last == '0' {
		flip = '1'
	}
	req.Header.Set("Authorization", h[:len(h)-1]+string(flip))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return errType(resp)
}

// Temporary credentials from `aws sts get-session-token` work with the AWS
// CLI and the SDK until they expire; `aws sts assume-role` gives a role's
// permissions, narrowed by a session policy.
func TestIAMSessionTokens(t *testing.T) {
	e := startIAMServer(t)
	m := newMatrix(t)
	ctx := ctxT(t)
	if _, err := e.kv(e.root).CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-1"), DataRetentionInHours: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	viewer := e.newKey(t, "", "viewer", "viewer", viewerPolicy)

	stdout, stderr, err := e.s.awsCLIAs(t, viewer, "sts", "get-session-token", "--duration-seconds", "900")
	m.expect("aws-cli", "sts get-session-token", cliCode(stderr, err), "")
	var got struct {
		Credentials struct{ AccessKeyId, SecretAccessKey, SessionToken, Expiration string }
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || got.Credentials.SessionToken == "" {
		t.Fatalf("get-session-token output %q: %v", stdout, err)
	}
	sess := aws.Credentials{AccessKeyID: got.Credentials.AccessKeyId, SecretAccessKey: got.Credentials.SecretAccessKey, SessionToken: got.Credentials.SessionToken}
	stdout, stderr, err = e.s.awsCLIAs(t, sess, "kinesisvideo", "list-streams")
	m.expect("aws-cli", "list-streams with AWS_SESSION_TOKEN", cliCode(stderr, err), "")
	if !strings.Contains(stdout, "cam-1") {
		t.Errorf("list-streams with the session: %s", stdout)
	}
	_, err = e.kv(sess).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	m.expect("go-sdk-v2", "DescribeStream with the session", sdkCode(err), "")
	_, err = e.kv(sess).DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: aws.String("arn:aws:kinesisvideo:us-west-2:000000000000:stream/cam-1/1")})
	m.expect("go-sdk-v2", "the session has the viewer's permissions only", sdkCode(err), "NotAuthorizedException")
	_, stderr, err = e.s.awsCLIAs(t, sess, "sts", "get-caller-identity")
	m.expect("aws-cli", "sts get-caller-identity with the session", cliCode(stderr, err), "")
	noToken := sess
	noToken.SessionToken = ""
	_, err = e.kv(noToken).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	m.expect("go-sdk-v2", "temporary key without its token", sdkCode(err), "UnrecognizedClientException")
	forged := sess
	forged.SessionToken = sess.SessionToken[:len(sess.SessionToken)-4] + "AAAA"
	_, err = e.kv(forged).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	m.expect("go-sdk-v2", "forged session token", sdkCode(err), "UnrecognizedClientException")
	withToken := viewer
	withToken.SessionToken = sess.SessionToken
	_, err = e.kv(withToken).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	m.expect("go-sdk-v2", "long-term key with a session token", sdkCode(err), "UnrecognizedClientException")
	_, stderr, err = e.s.awsCLIAs(t, sess, "sts", "get-session-token")
	m.expect("aws-cli", "get-session-token with session credentials", cliCode(stderr, err), "AccessDenied")
	_, stderr, err = e.s.awsCLIAs(t, aws.Credentials{AccessKeyID: viewer.AccessKeyID, SecretAccessKey: "wrong"}, "sts", "get-session-token")
	m.expect("aws-cli", "get-session-token with a wrong secret", cliCode(stderr, err), "SignatureDoesNotMatch")

	// A role for cameras: PutMedia to the stream named by the session
	// policy's narrowing.
	e.mustAdmin(t, "role", "create", "--role", "camera", "--trust", "arn:aws:iam::000000000000:user/ops")
	e.mustAdmin(t, "policy", "put", "--policy", "camera", "--document",
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["kinesisvideo:PutMedia","kinesisvideo:DescribeStream"],"Resource":"*"}}`)
	e.mustAdmin(t, "policy", "attach", "--policy", "camera", "--role", "camera")
	ops := e.newKey(t, "", "ops", "assume", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::000000000000:role/camera"}}`)
	stdout, stderr, err = e.s.awsCLIAs(t, ops, "sts", "assume-role", "--role-arn", "arn:aws:iam::000000000000:role/camera",
		"--role-session-name", "installer", "--policy", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"*"}}`)
	m.expect("aws-cli", "sts assume-role", cliCode(stderr, err), "")
	var ar struct {
		Credentials     struct{ AccessKeyId, SecretAccessKey, SessionToken string }
		AssumedRoleUser struct{ Arn string }
	}
	json.Unmarshal([]byte(stdout), &ar)
	if ar.AssumedRoleUser.Arn != "arn:aws:sts::000000000000:assumed-role/camera/installer" {
		t.Errorf("AssumedRoleUser.Arn = %q", ar.AssumedRoleUser.Arn)
	}
	role := aws.Credentials{AccessKeyID: ar.Credentials.AccessKeyId, SecretAccessKey: ar.Credentials.SecretAccessKey, SessionToken: ar.Credentials.SessionToken}
	m.expect("signed-http", "role session PutMedia", e.putCode(t, role, "cam-1"), "")
	_, err = e.kv(role).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	m.expect("go-sdk-v2", "role session DescribeStream outside its session policy", sdkCode(err), "NotAuthorizedException")
	_, stderr, err = e.s.awsCLIAs(t, viewer, "sts", "assume-role", "--role-arn", "arn:aws:iam::000000000000:role/camera", "--role-session-name", "x1")
	m.expect("aws-cli", "assume-role without sts:AssumeRole", cliCode(stderr, err), "AccessDenied")
	e.mustAdmin(t, "user", "create", "--user", "ops2")
	e.mustAdmin(t, "policy", "attach", "--policy", "assume", "--user", "ops2")
	ops2 := aws.Credentials{}
	k := e.mustAdmin(t, "key", "create", "--user", "ops2")["AccessKey"].(map[string]any)
	ops2.AccessKeyID, ops2.SecretAccessKey = k["AccessKeyId"].(string), k["SecretAccessKey"].(string)
	_, stderr, err = e.s.awsCLIAs(t, ops2, "sts", "assume-role", "--role-arn", "arn:aws:iam::000000000000:role/camera", "--role-session-name", "x2")
	m.expect("aws-cli", "assume-role allowed by policy but not trusted by the role", cliCode(stderr, err), "AccessDenied")

	// After expiry (the IAM clock moves 16 minutes on), the session is
	// refused.
	e.clock.Store(int64(16 * time.Minute))
	_, stderr, err = e.s.awsCLIAs(t, sess, "kinesisvideo", "list-streams")
	m.expect("aws-cli", "list-streams with an expired session token", cliCode(stderr, err), "ExpiredTokenException")
	_, err = e.kv(sess).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	m.expect("go-sdk-v2", "ListStreams with an expired session token", sdkCode(err), "ExpiredTokenException")
	m.expect("signed-http", "role session PutMedia within its hour", e.putCode(t, role, "cam-1"), "")
	_, err = e.kv(viewer).ListStreams(ctx, &kinesisvideo.ListStreamsInput{})
	m.expect("go-sdk-v2", "the long-term key still works", sdkCode(err), "")
	m.report("IAM session matrix")
}

// Every operation the server routes, KVS, Kinema's extensions, clip
// metadata and admin, is refused to a key with no policy: the walk is over
// kvsapi.Operations(), so a new route is covered the day it is added. Each
// body is valid enough to reach the authorization check, and each refusal
// is in the audit log with the operation's action.
func TestIAMEveryOperationIsChecked(t *testing.T) {
	e := startIAMServer(t)
	m := newMatrix(t)
	ctx := ctxT(t)
	cam, err := e.kv(e.root).CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-1"), DataRetentionInHours: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	nobody := e.newKey(t, "", "nobody", "", "")
	if code := e.putCode(t, e.root, "cam-1"); code != "" {
		t.Fatalf("root PutMedia: %s", code)
	}
	frags, err := e.archived(e.root).ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam-1")})
	if err != nil || len(frags.Fragments) == 0 {
		t.Fatalf("ListFragments: %v", err)
	}
	// A clip record to GET (GET looks the record up before the stream).
	begin := time.Now().Add(-time.Hour).UnixMilli()
	clip := `{"clientID":"app","deviceID":"d","streamName":"cam-1","begTime":` + itoa(int(begin)) + `,"endTime":` + itoa(int(begin+10000)) + `,"duration":10}`
	if resp, body := signedCallAs(t, e.s.URL, e.root, http.MethodPut, strings.TrimPrefix(clipmeta.Path, "/"), clip, time.Now(), testRegion); resp.StatusCode != 200 {
		t.Fatalf("root PUT clip: %d %s", resp.StatusCode, body)
	}

	stream := `"StreamName":"cam-1"`
	bodies := map[string]string{
		"CreateStream":                      `{"StreamName":"new-stream"}`,
		"DeleteStream":                      `{"StreamARN":"` + *cam.StreamARN + `"}`,
		"UpdateStream":                      `{` + stream + `,"CurrentVersion":"x","MediaType":"video/h264"}`,
		"UpdateDataRetention":               `{` + stream + `,"CurrentVersion":"x","Operation":"INCREASE_DATA_RETENTION","DataRetentionChangeInHours":1}`,
		"GetDataEndpoint":                   `{` + stream + `,"APIName":"GET_MEDIA"}`,
		"TagStream":                         `{` + stream + `,"Tags":{"a":"b"}}`,
		"UntagStream":                       `{` + stream + `,"TagKeyList":["a"]}`,
		"TagResource":                       `{"ResourceARN":"` + *cam.StreamARN + `","Tags":[{"Key":"a","Value":"b"}]}`,
		"UntagResource":                     `{"ResourceARN":"` + *cam.StreamARN + `","TagKeyList":["a"]}`,
		"ListTagsForResource":               `{"ResourceARN":"` + *cam.StreamARN + `"}`,
		"UpdateNotificationConfiguration":   `{` + stream + `,"NotificationConfiguration":{"Status":"DISABLED","DestinationConfig":{"Uri":"https://example.com/x"}}}`,
		"GetMedia":                          `{` + stream + `,"StartSelector":{"StartSelectorType":"EARLIEST"}}`,
		"GetMediaForFragmentList":           `{` + stream + `,"Fragments":["` + *frags.Fragments[0].FragmentNumber + `"]}`,
		"GetClip":                           `{` + stream + `,"ClipFragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":1,"EndTimestamp":2}}}`,
		"GetClipSessionURL":                 `{` + stream + `,"ClipFragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":1,"EndTimestamp":2}}}`,
		"GetImages":                         `{` + stream + `,"ImageSelectorType":"SERVER_TIMESTAMP","StartTimestamp":1,"EndTimestamp":2,"Format":"JPEG","SamplingInterval":3000}`,
		"GetTimelapse":                      `{` + stream + `,"ImageSelectorType":"SERVER_TIMESTAMP","StartTimestamp":1,"EndTimestamp":2,"SamplingInterval":1000}`,
		"ListStreams":                       `{}`,
		"ListEvents":                        `{` + stream + `}`,
		"RedriveEvents":                     `{` + stream + `}`,
		"DescribeNotificationConfiguration": `{` + stream + `}`,
	}
	adminBody := `{"UserName":"nobody","PolicyName":"p","RoleName":"r","RoleAlias":"a","ThingName":"t","AccessKeyId":"` +
		nobody.AccessKeyID + `","AccountName":"acct-x","Status":"Inactive","PolicyDocument":"{}"}`
	seen := map[string]bool{}
	for _, op := range kvsapi.Operations() {
		var code string
		switch {
		case op.Path == "/putMedia":
			code = e.putCode(t, nobody, "cam-1")
		case op.Path == clipmeta.Path:
			code = clipMetaCode(t, e.s.URL, nobody, op.Name, begin)
		case strings.HasPrefix(op.Path, admin.PathPrefix):
			if op.Name == "DeleteAccount" {
				code = rawCode(t, e.s.URL, nobody, strings.TrimPrefix(op.Path, "/"), `{"Account":"default"}`)
			} else {
				code = rawCode(t, e.s.URL, nobody, strings.TrimPrefix(op.Path, "/"), adminBody)
			}
		default:
			body, ok := bodies[op.Name]
			if !ok {
				body = `{` + stream + `}`
			}
			code = rawCode(t, e.s.URL, nobody, strings.TrimPrefix(op.Path, "/"), body)
		}
		want := "NotAuthorizedException"
		if code == "AccessDeniedException" {
			want = code
		}
		m.expect("signed-http", op.Name+" ("+op.Action+") with no policy", code, want)
		seen[op.Action] = true
	}
	m.report("operations checked")
	b, _ := os.ReadFile(filepath.Join(e.s.dir, iam.AuditFile))
	for action := range seen {
		if action == "kinema:DeleteAccount" || action == "kinema:CreateAccount" || action == "kinema:ListAccounts" {
			// Refused before the check (a tenant matter): still denied.
			continue
		}
		if !strings.Contains(string(b), `"action":"`+action+`"`) {
			t.Errorf("no audit record of the refused %s", action)
		}
	}
}

// clipMetaCode calls a clip-metadata operation as creds and returns its
// error type.
func clipMetaCode(t *testing.T, baseURL string, creds aws.Credentials, name string, begin int64) string {
	t.Helper()
	times := `"begTime":` + itoa(int(begin)) + `,"endTime":` + itoa(int(begin+10000))
	var method, path, body string
	switch name {
	case "PutClipMetadata":
		method, path, body = http.MethodPut, clipmeta.Path, `{"clientID":"app","deviceID":"d","streamName":"cam-1",`+times+`,"duration":10}`
	case "GetClipMetadata":
		method, path, body = http.MethodGet, clipmeta.Path, `{"clientID":"app","streamName":"cam-1",`+times+`}`
	case "DeleteClipMetadata":
		method, path, body = http.MethodDelete, clipmeta.Path, `{"clientID":"app","deviceID":"d","streamName":"cam-1","begTime":`+itoa(int(begin))+`}`
	case "ListClipMetadata":
		method, path, body = http.MethodGet, clipmeta.Path+"/clips", `{"clientID":"app"}`
	default:
		t.Fatalf("unknown clip-metadata operation %s", name)
	}
	resp, b := signedCallAs(t, baseURL, creds, method, strings.TrimPrefix(path, "/"), body, time.Now(), testRegion)
	if resp.StatusCode == 200 {
		return ""
	}
	t.Logf("%s: %s", name, b)
	return resp.Header.Get("x-amzn-ErrorType")
}

// The device credentials endpoint: a certificate from `kinema admin device
// register` is exchanged (over mutual TLS, as the KVS producer SDK's IoT
// credential provider does it, here with curl and with Go) for credentials
// that may stream to the device's own stream only; an unregistered, foreign
// or revoked certificate gets nothing, and revoking ends the credentials
// already issued.
func TestIAMDeviceCertificates(t *testing.T) {
	e := startIAMServer(t, func(c *app.Config) { c.IoTListen = "127.0.0.1:0" })
	m := newMatrix(t)
	ctx := ctxT(t)
	for _, name := range []string{"cam-1", "cam-2"} {
		if _, err := e.kv(e.root).CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(name), DataRetentionInHours: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
	}
	e.mustAdmin(t, "role", "create", "--role", "camera")
	e.mustAdmin(t, "policy", "put", "--policy", "own-stream", "--document", `{"Version":"2012-10-17","Statement":{"Effect":"Allow",`+
		`"Action":["kinesisvideo:PutMedia","kinesisvideo:DescribeStream","kinesisvideo:GetDataEndpoint"],`+
		`"Resource":"arn:aws:kinesisvideo:*:*:stream/${credentials-iot:ThingName}/*"}}`)
	e.mustAdmin(t, "policy", "attach", "--policy", "own-stream", "--role", "camera")
	e.mustAdmin(t, "role-alias", "create", "--alias", "kvs-cameras", "--role", "camera")
	// Checked before any camera has it: the role's policy for thing cam-1.
	for _, c := range []struct{ stream, want string }{{"cam-1", "allowed"}, {"cam-2", "implicitDeny"}} {
		res := e.mustAdmin(t, "policy", "simulate", "--role", "camera", "--thing", "cam-1", "--action", "kinesisvideo:PutMedia",
			"--resource", "arn:aws:kinesisvideo:us-west-2:000000000000:stream/"+c.stream+"/1")
		got, _ := res["EvalDecision"].(string)
		m.expect("kinema-admin", "policy simulate of PutMedia to "+c.stream+" (the decision)", got, c.want)
	}
	dir := t.TempDir()
	reg := e.mustAdmin(t, "device", "register", "--thing", "cam-1", "--out", dir, "--alias", "kvs-cameras")
	if reg["Status"] != "ACTIVE" {
		t.Fatalf("device register: %v", reg)
	}
	envFile, err := os.ReadFile(filepath.Join(dir, "cam-1.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"AWS_IOT_CORE_CREDENTIAL_ENDPOINT=" + strings.TrimPrefix(e.s.IoTURL, "https://"), "AWS_IOT_CORE_ROLE_ALIAS=kvs-cameras",
		"AWS_IOT_CORE_THING_NAME=cam-1", "AWS_IOT_CORE_CERT=" + filepath.Join(dir, "cam-1.cert.pem"), "CONTROL_PLANE_URI=" + e.s.URL} {
		if !strings.Contains(string(envFile), want+"\n") {
			t.Errorf("cam-1.env lacks %s:\n%s", want, envFile)
		}
	}
	cert, key, ca := filepath.Join(dir, "cam-1.cert.pem"), filepath.Join(dir, "cam-1.key.pem"), filepath.Join(dir, "ca.pem")
	url := e.s.IoTURL + "/role-aliases/kvs-cameras/credentials"

	// curl, the HTTP client of the producer SDK.
	status, body := curlIoT(t, url, "cam-1", cert, key, ca)
	m.expect("signed-http", "curl with the registered certificate", httpCode(status), "")
	var got struct {
		Credentials struct{ AccessKeyId, SecretAccessKey, SessionToken, Expiration string } `json:"credentials"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Credentials.SessionToken == "" {
		t.Fatalf("credentials answer %q: %v", body, err)
	}
	if exp, err := time.Parse(time.RFC3339, got.Credentials.Expiration); err != nil || time.Until(exp) < 50*time.Minute {
		t.Errorf("expiration %q", got.Credentials.Expiration)
	}
	dev := aws.Credentials{AccessKeyID: got.Credentials.AccessKeyId, SecretAccessKey: got.Credentials.SecretAccessKey, SessionToken: got.Credentials.SessionToken}
	m.expect("signed-http", "device credentials PutMedia to cam-1", e.putCode(t, dev, "cam-1"), "")
	m.expect("signed-http", "device credentials PutMedia to cam-2", e.putCode(t, dev, "cam-2"), "NotAuthorizedException")
	// A real producer with them: `kinema put` (DescribeStream,
	// GetDataEndpoint, PutMedia, the session token unsigned as the KVS
	// producer SDK sends it) streams a file to cam-1 and not to cam-2.
	src := makeMedia(t, "in.mp4", args(srcVideo, []string{"-t", "2"}, encX264)...)
	for _, c := range []struct{ stream, want string }{{"cam-1", ""}, {"cam-2", "NotAuthorizedException"}} {
		cmd := exec.Command(kinemaBinary(t), "put", "--endpoint", e.s.URL, "--stream", c.stream, "--fast", "--quiet", src)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+dev.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+dev.SecretAccessKey,
			"AWS_SESSION_TOKEN="+dev.SessionToken, "AWS_REGION="+testRegion)
		out, err := cmd.CombinedOutput()
		code := ""
		if err != nil {
			code = "error: " + string(out)
			if strings.Contains(string(out), "NotAuthorizedException") {
				code = "NotAuthorizedException"
			}
		}
		m.expect("kinema-put", "kinema put with device credentials to "+c.stream, code, c.want)
	}
	_, err = e.kv(dev).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	m.expect("go-sdk-v2", "device credentials DescribeStream cam-1", sdkCode(err), "")
	_, err = e.kv(dev).DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-2")})
	m.expect("go-sdk-v2", "device credentials DescribeStream cam-2", sdkCode(err), "NotAuthorizedException")
	_, stderr, err := e.s.awsCLIAs(t, dev, "kinesisvideo", "list-streams")
	m.expect("aws-cli", "device credentials list-streams", cliCode(stderr, err), "NotAuthorizedException")

	status, _ = curlIoT(t, url, "cam-2", cert, key, ca)
	m.expect("signed-http", "certificate presented with another thing name", httpCode(status), "403")
	status, _ = curlIoT(t, e.s.IoTURL+"/role-aliases/nope/credentials", "cam-1", cert, key, ca)
	m.expect("signed-http", "unknown role alias", httpCode(status), "404")

	// A certificate of Kinema's CA that was never registered.
	devCA, err := iotcreds.OpenCA(filepath.Join(e.s.dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, _ := devCA.Issue("cam-2")
	os.WriteFile(filepath.Join(dir, "rogue.cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "rogue.key.pem"), keyPEM, 0o600)
	status, _ = curlIoT(t, url, "cam-2", filepath.Join(dir, "rogue.cert.pem"), filepath.Join(dir, "rogue.key.pem"), ca)
	m.expect("signed-http", "unregistered certificate", httpCode(status), "403")
	// Registered (`device register --cert`), the same certificate works,
	// for its own thing's stream.
	reg = e.mustAdmin(t, "device", "register", "--thing", "cam-2", "--cert", filepath.Join(dir, "rogue.cert.pem"))
	if _, hasKey := reg["PrivateKeyPem"]; hasKey || reg["Status"] != "ACTIVE" {
		t.Errorf("registering a certificate: %v", reg)
	}
	status, body = curlIoT(t, url, "cam-2", filepath.Join(dir, "rogue.cert.pem"), filepath.Join(dir, "rogue.key.pem"), ca)
	m.expect("signed-http", "the certificate once registered", httpCode(status), "")
	json.Unmarshal([]byte(body), &got)
	cam2 := aws.Credentials{AccessKeyID: got.Credentials.AccessKeyId, SecretAccessKey: got.Credentials.SecretAccessKey, SessionToken: got.Credentials.SessionToken}
	m.expect("signed-http", "its credentials PutMedia to cam-2", e.putCode(t, cam2, "cam-2"), "")
	m.expect("signed-http", "its credentials PutMedia to cam-1", e.putCode(t, cam2, "cam-1"), "NotAuthorizedException")
	_, stderr, err = e.admin(t, e.root, "device", "register", "--thing", "cam-3", "--cert", filepath.Join(dir, "rogue.cert.pem"))
	m.expect("kinema-admin", "registering a certificate twice", adminCode(stderr, err), "ResourceInUseException")
	// A certificate of another CA fails the TLS handshake; so does none.
	other, err := iotcreds.OpenCA(filepath.Join(t.TempDir(), "other-ca"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, _ = other.Issue("cam-1")
	os.WriteFile(filepath.Join(dir, "foreign.cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "foreign.key.pem"), keyPEM, 0o600)
	status, _ = curlIoT(t, url, "cam-1", filepath.Join(dir, "foreign.cert.pem"), filepath.Join(dir, "foreign.key.pem"), ca)
	m.expect("signed-http", "certificate of another CA", httpCode(status), "TLS refused")
	_, stderr, err = e.admin(t, e.root, "device", "register", "--thing", "cam-9", "--cert", filepath.Join(dir, "foreign.cert.pem"))
	m.expect("kinema-admin", "registering a certificate of another CA", adminCode(stderr, err), "InvalidArgumentException")
	status, _ = curlIoT(t, url, "cam-1", "", "", ca)
	m.expect("signed-http", "no client certificate", httpCode(status), "TLS refused")

	// Revoked: no new credentials, and the issued ones stop working.
	e.mustAdmin(t, "device", "revoke", "--thing", "cam-1")
	status, _ = curlIoT(t, url, "cam-1", cert, key, ca)
	m.expect("signed-http", "revoked certificate", httpCode(status), "403")
	m.expect("signed-http", "credentials of a revoked certificate", e.putCode(t, dev, "cam-1"), "UnrecognizedClientException")
	m.report("device certificate matrix")
}

// curlIoT fetches device credentials with curl and a client certificate;
// status 0 means the TLS handshake failed.
func curlIoT(t *testing.T, url, thing, cert, key, ca string) (int, string) {
	t.Helper()
	args := []string{"-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert", ca, "-H", "x-amzn-iot-thingname: " + thing}
	if cert != "" {
		args = append(args, "--cert", cert, "--key", key)
	}
	out, err := exec.Command("curl", append(args, url)...).CombinedOutput()
	if err != nil {
		return 0, string(out)
	}
	text := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(text, '\n')
	var code int
	json.Unmarshal([]byte(text[i+1:]), &code)
	return code, text[:max(i, 0)]
}

func httpCode(status int) string {
	switch status {
	case 200:
		return ""
	case 0:
		return "TLS refused"
	}
	return itoa(status)
}

// Abuse limits: per-key and per-stream request rates answer
// ClientLimitExceededException, a key's concurrent media connections and a
// stream's GetMedia readers ConnectionLimitExceededException, an oversized
// body RequestEntityTooLargeException, and a client that stops sending its
// body is cut off.
func TestIAMLimits(t *testing.T) {
	e := startIAMServer(t, func(c *app.Config) {
		c.RateLimits = &limits.Config{KeyRate: 20, KeyBurst: 20, KeyConnections: 1, StreamRate: 1, MediaRate: 1,
			StreamReaders: 1, IdleTimeout: time.Second}
		c.GetMediaIdle = 20 * time.Second
		c.MaxStreamsPerAccount = 3
	})
	m := newMatrix(t)
	ctx := ctxT(t)
	for _, name := range []string{"cam-1", "cam-2", "cam-3"} {
		if _, err := e.kv(e.root).CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(name), DataRetentionInHours: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
	}
	a := e.newKey(t, "", "a", "all", adminPolicy)
	b := e.newKey(t, "", "b", "", "")
	c := e.newKey(t, "", "c", "", "")
	e.mustAdmin(t, "policy", "attach", "--policy", "all", "--user", "b")
	e.mustAdmin(t, "policy", "attach", "--policy", "all", "--user", "c")

	// Key rate: 20 per second with a burst of 20.
	codes := map[string]int{}
	for range 30 {
		codes[rawCode(t, e.s.URL, a, "listStreams", `{}`)]++
	}
	m.expect("signed-http", "30 calls at once from one key: the burst passes", boolCode(codes[""] >= 20), "")
	m.expect("signed-http", "30 calls at once from one key: the rest are throttled", boolCode(codes["ClientLimitExceededException"] >= 1), "")
	// Another key is not affected.
	m.expect("signed-http", "another key meanwhile", rawCode(t, e.s.URL, b, "listStreams", `{}`), "")

	// Stream rate: 1 per second per stream and operation, burst 10.
	codes = map[string]int{}
	for range 12 {
		codes[rawCode(t, e.s.URL, b, "describeStream", `{"StreamName":"cam-2"}`)]++
	}
	m.expect("signed-http", "12 DescribeStream of one stream: throttled past the burst", boolCode(codes["ClientLimitExceededException"] >= 1), "")
	m.expect("signed-http", "DescribeStream of another stream meanwhile", rawCode(t, e.s.URL, b, "describeStream", `{"StreamName":"cam-3"}`), "")

	// One media connection per key: a PutMedia in progress holds it.
	pr, pw := io.Pipe()
	done := make(chan putResult, 1)
	go func() { done <- putMediaAs(t, e.s.URL, c, absolute("cam-1"), pr, nil) }()
	pw.Write((&mkvBuilder{}).header().cluster(uint64(time.Now().UnixMilli()), 1, 10).b)
	time.Sleep(300 * time.Millisecond)
	m.expect("signed-http", "a second PutMedia while the key's connection is open", e.putCode(t, c, "cam-3"), "ConnectionLimitExceededException")
	pw.Close()
	<-done

	// One GetMedia reader per stream.
	req := signedRequest(t, e.s.URL, a, http.MethodPost, "getMedia", `{"StreamName":"cam-2","StartSelector":{"StartSelectorType":"NOW"}}`, time.Now(), testRegion)
	time.Sleep(1500 * time.Millisecond) // let key a's bucket refill
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first GetMedia: %v %v", err, resp)
	}
	m.expect("signed-http", "a second GetMedia reader of the stream", rawCode(t, e.s.URL, b, "getMedia", `{"StreamName":"cam-2","StartSelector":{"StartSelectorType":"NOW"}}`), "ConnectionLimitExceededException")
	resp.Body.Close()

	// The account's stream quota (3 here) is full.
	_, err = e.kv(e.root).CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam-4")})
	m.expect("go-sdk-v2", "a fourth stream past the account's quota of 3", sdkCode(err), "AccountStreamLimitExceededException")

	// Oversized JSON.
	m.expect("signed-http", "a 2 MiB JSON body", rawCode(t, e.s.URL, b, "createStream", `{"StreamName":"`+strings.Repeat("a", 2<<20)+`"}`), "RequestEntityTooLargeException")

	// Slow-loris: headers promise a body that never comes.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent := time.Now()
	io.WriteString(conn, "POST /describeStream HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nContent-Type: application/json\r\n\r\n{")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.ReadAll(conn) // returns when the server gives up on the body and closes
	took := time.Since(sent)
	m.expect("signed-http", "a stalled body is cut off after the idle timeout", boolCode(took < 5*time.Second), "")
	// A reader that stops reading: 24 MB of fragments asked for, nothing
	// read for 3 s. More than the socket buffers hold, so the server's
	// writes stall; after the idle timeout (1 s here) it gives up, and the
	// reader gets less than it asked for.
	big := (&mkvBuilder{}).header()
	ts := uint64(time.Now().Add(-time.Hour).UnixMilli())
	for i := range 3 {
		big.cluster(ts+uint64(i)*1000, 8, 1<<20).eofr()
	}
	if res := putMediaAs(t, e.s.URL, e.root, absolute("cam-3"), big.reader(), nil); res.count("PERSISTED") != 3 {
		t.Fatalf("PutMedia of the big fragments: %+v", res)
	}
	frags, err := e.archived(e.root).ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam-3")})
	if err != nil || len(frags.Fragments) != 3 {
		t.Fatalf("ListFragments: %v", err)
	}
	var nums []string
	for _, f := range frags.Fragments {
		nums = append(nums, `"`+*f.FragmentNumber+`"`)
	}
	req = signedRequest(t, e.s.URL, e.root, http.MethodPost, "getMediaForFragmentList",
		`{"StreamName":"cam-3","Fragments":[`+strings.Join(nums, ",")+`]}`, time.Now(), testRegion)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GetMediaForFragmentList: %v %v", err, resp)
	}
	time.Sleep(3 * time.Second)
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	t.Logf("the stalled reader got %d of %d bytes, then: %v", n, 24<<20, err)
	m.expect("signed-http", "a reader that stops reading is cut off after the idle timeout", boolCode(err != nil && n < 24<<20), "")
	m.report("limits matrix")
}

func boolCode(ok bool) string {
	if ok {
		return ""
	}
	return "false"
}
