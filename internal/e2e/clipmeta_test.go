package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// curlSigned sends a SigV4-signed request with curl and returns status and body.
func curlSigned(t *testing.T, s *server, method, path, body string) (int, string) {
	t.Helper()
	args := []string{"-sS", "-o", "-", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:kinesisvideo",
		"--user", testKey + ":" + testSecret, "-X", method, "-H", "Content-Type: application/json"}
	if body != "" {
		args = append(args, "--data", body)
	}
	out, err := exec.Command("curl", append(args, s.URL+path)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s %s: %v %s", method, path, err, out)
	}
	text := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(text, '\n')
	var code int
	fmt.Sscan(text[i+1:], &code)
	return code, text[:max(i, 0)]
}

// The device clip-metadata flow: a device records a clip while its camera
// streams, an app asks for it and plays the URL it gets, frame-exact.
func TestClipMetadataFlow(t *testing.T) {
	s := startServer(t)
	file := makeMedia(t, "src.mkv", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "6",
		"-c:v", "libx264", "-g", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-cluster_time_limit", "1000")
	createStream(t, s, "door-cam", 1)
	start := time.Now().Add(-time.Minute).UnixMilli()
	curlPutMedia(t, s, "door-cam", file, start)
	frags := listByProducerTime(t, s, "door-cam", start, 5)
	begin, end := frags[1].ProducerTimestamp.UnixMilli(), frags[3].ProducerTimestamp.UnixMilli()
	wantFrames, _ := countMKV(t, getFragmentList(t, s, "door-cam", frags[1:4]))
	dur := float64(end-begin) / 1000

	// The device's PUT: times as strings, as the original devices send them.
	code, body := curlSigned(t, s, "PUT", "/ipc-video-metadata",
		fmt.Sprintf(`{"clientID":"app-1","deviceID":"dev-7","streamName":"door-cam","begTime":"%d","endTime":"%d","duration":"%.0f"}`, begin, end, dur))
	if code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	// The app's GET with a JSON body, answered with a JSON string: the URL.
	code, body = curlSigned(t, s, "GET", "/ipc-video-metadata",
		fmt.Sprintf(`{"clientID":"app-1","streamName":"door-cam","begTime":%d,"endTime":%d,"duration":%.0f}`, begin, end, dur))
	var url string
	if code != 200 || json.Unmarshal([]byte(body), &url) != nil || !strings.Contains(url, "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=") {
		t.Fatalf("GET: %d %s", code, body)
	}
	if vf, _ := ffprobeURL(t, url); vf != wantFrames {
		t.Fatalf("the clip's URL plays %d frames; the clip holds %d", vf, wantFrames)
	}
	// Listing by device, and validation.
	code, body = curlSigned(t, s, "GET", "/ipc-video-metadata/clips?clientID=app-1&deviceID=dev-7", "")
	if code != 200 || !strings.Contains(body, `"dev-7"`) {
		t.Fatalf("list: %d %s", code, body)
	}
	code, body = curlSigned(t, s, "PUT", "/ipc-video-metadata",
		fmt.Sprintf(`{"clientID":"app-1","deviceID":"dev-7","streamName":"door-cam","begTime":"%d","endTime":"%d","duration":"1"}`, end, begin))
	if code != 400 || !strings.Contains(body, "InvalidArgument") && !strings.Contains(body, "message") {
		t.Fatalf("end before begin: %d %s", code, body)
	}
	code, _ = curlSigned(t, s, "PUT", "/ipc-video-metadata",
		`{"clientID":"app-1","deviceID":"dev-7","streamName":"no-such-cam","begTime":"1","endTime":"2000","duration":"2"}`)
	if code != 400 {
		t.Fatalf("unknown stream: %d", code)
	}
	// Unsigned calls are refused like every other API call.
	out, _ := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data", "{}", s.URL+"/ipc-video-metadata").Output()
	if string(out) != "403" {
		t.Fatalf("unsigned PUT: %s", out)
	}
}
