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
	cases := []struct {
		name string
		file string
		args []string
	}{
		{"h264-mp4", "in.mp4", args(srcVideo, []string{"-t", "3"}, encX264)},
		{"h264-aac-mp4", "in.mp4", args(srcVideo, srcAudio, []string{"-t", "3"}, encX264, []string{"-c:a", "aac"})},
		{"h265-mkv", "in.mkv", args(srcVideo, []string{"-t", "3"}, encX265)},
		{"h265-aac-mp4", "in.mp4", args(srcVideo, srcAudio, []string{"-t", "3"}, encX265, []string{"-tag:v", "hvc1", "-c:a", "aac"})},
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
