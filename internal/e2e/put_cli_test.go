package e2e

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
)

// The user path end to end: `kinema serve` as a process, `kinema put` as
// another, an ffmpeg-made file of each codec mix with custom and event tags;
// every frame and every tag comes back through GetMediaForFragmentList.
func TestKinemaPutCommand(t *testing.T) {
	p := startProcess(t, t.TempDir(), freePort(t))
	_, am := p.clients()
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"}
	audio := []string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"}
	x264 := []string{"-c:v", "libx264", "-g", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p"}
	x265 := []string{"-c:v", "libx265", "-x265-params", "keyint=25:min-keyint=25:scenecut=0:log-level=error", "-pix_fmt", "yuv420p"}
	join := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		name string
		file string
		args []string
	}{
		{"h264-mp4", "in.mp4", join(video, []string{"-t", "3"}, x264)},
		{"h264-aac-mp4", "in.mp4", join(video, audio, []string{"-t", "3"}, x264, []string{"-c:a", "aac"})},
		{"h265-mkv", "in.mkv", join(video, []string{"-t", "3"}, x265)},
		{"h265-aac-mp4", "in.mp4", join(video, audio, []string{"-t", "3"}, x265, []string{"-tag:v", "hvc1", "-c:a", "aac"})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := makeMedia(t, c.file, c.args...)
			cmd := exec.Command(kinemaBinary(t), "put", "--endpoint", p.url, "--stream", c.name, "--create", "--fast", "--quiet",
				"--tag", "site=lobby", "--notify", "--images", "--image-prefix", "thumbs", "--event-every", "2", src)
			cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+testKey, "AWS_SECRET_ACCESS_KEY="+testSecret, "AWS_REGION="+testRegion)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("kinema put: %v\n%s", err, out)
			}
			ctx := context.Background()
			lf, err := am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(c.name)})
			if err != nil {
				t.Fatal(err)
			}
			if len(lf.Fragments) != 3 {
				t.Fatalf("%d fragments archived, want 3 (1 s GOPs): %s", len(lf.Fragments), out)
			}
			nums := make([]string, len(lf.Fragments))
			for i, f := range lf.Fragments {
				nums[i] = aws.ToString(f.FragmentNumber)
			}
			got, err := am.GetMediaForFragmentList(ctx, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{StreamName: aws.String(c.name), Fragments: nums})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(got.Payload)
			if err != nil {
				log, _ := os.ReadFile(p.log.Name())
				t.Fatalf("reading GetMediaForFragmentList: %v (%d bytes)\nserver log:\n%s", err, len(b), log)
			}
			if served, sent := ffprobePackets(t, b), ffprobePacketsFile(t, src); served != sent {
				t.Fatalf("%d packets served, %d in the source", served, sent)
			}
			_, tags := countMKV(t, b)
			if tags["site"] != 3 || tags["AWS_KINESISVIDEO_NOTIFICATION"] != 2 || tags["AWS_KINESISVIDEO_IMAGE_GENERATION"] != 2 ||
				tags["AWS_KINESISVIDEO_IMAGE_PREFIX"] != 2 {
				t.Fatalf("tags %v (event tags every 2nd fragment: fragments 0 and 2)", tags)
			}
			if !strings.Contains(strings.ToLower(string(out)), "persisted") {
				t.Logf("kinema put said:\n%s", out)
			}
		})
	}
}
