package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/producer"
)

// The HLS (and DASH) session options: playback modes, discontinuity modes,
// program date-times, playlist sizes, argument checks, codec changes and
// the two clocks, each through the real server, the Go SDK and ffprobe.

// hmMedia encodes a clip with ffmpeg (testsrc2 at 25 fps, H.264 with a
// key frame every gop frames) and reads it as the producer will send it.
func hmMedia(t *testing.T, name, size string, seconds float64, gop int, x264 ...string) *producer.Media {
	t.Helper()
	args := []string{"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=25",
		"-t", strconv.FormatFloat(seconds, 'f', -1, 64), "-c:v", "libx264", "-g", strconv.Itoa(gop),
		"-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p"}
	file := makeMedia(t, name+".mkv", append(args, x264...)...)
	m, err := producer.OpenFile(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hmPut sends the media with the producer (as fast as the server reads,
// ABSOLUTE timecodes from start) and requires every fragment PERSISTED.
func hmPut(t *testing.T, s *server, name string, m *producer.Media, start time.Time, mods ...func(*producer.Config)) {
	t.Helper()
	hmPutTo(t, s.URL, name, m, start, mods...)
}

// hmPutTo is hmPut to any endpoint (a kinema serve process).
func hmPutTo(t *testing.T, endpoint, name string, m *producer.Media, start time.Time, mods ...func(*producer.Config)) {
	t.Helper()
	cfg := producer.Config{Endpoint: endpoint, Region: testRegion, AccessKeyID: testKey, SecretAccessKey: testSecret,
		StreamName: name, StartTime: start}
	for _, mod := range mods {
		mod(&cfg)
	}
	plans := m.Fragments(0)
	res, err := producer.Put(ctxT(t), cfg, plans, m.Header)
	if err != nil {
		t.Fatalf("PutMedia %s: %v", name, err)
	}
	if want := len(plans) * max(cfg.Loop, 1); res.Counts[producer.AckPersisted] != want {
		t.Fatalf("PutMedia %s: acks %v, want %d PERSISTED", name, res.Counts, want)
	}
}

// hmList lists every fragment with a start in [from, to] on the given
// clock, oldest first.
func hmList(t *testing.T, s *server, name string, kind avtypes.FragmentSelectorType, from, to time.Time) []avtypes.Fragment {
	t.Helper()
	p := kinesisvideoarchivedmedia.NewListFragmentsPaginator(s.archived(), &kinesisvideoarchivedmedia.ListFragmentsInput{
		StreamName: aws.String(name), FragmentSelector: &avtypes.FragmentSelector{FragmentSelectorType: kind,
			TimestampRange: &avtypes.TimestampRange{StartTimestamp: aws.Time(from), EndTimestamp: aws.Time(to)}}})
	var out []avtypes.Fragment
	for p.HasMorePages() {
		page, err := p.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("ListFragments: %v", err)
		}
		out = append(out, page.Fragments...)
	}
	at := func(f avtypes.Fragment) time.Time {
		if kind == avtypes.FragmentSelectorTypeServerTimestamp {
			return *f.ServerTimestamp
		}
		return *f.ProducerTimestamp
	}
	sort.Slice(out, func(i, j int) bool {
		if !at(out[i]).Equal(at(out[j])) {
			return at(out[i]).Before(at(out[j]))
		}
		return aws.ToString(out[i].FragmentNumber) < aws.ToString(out[j].FragmentNumber)
	})
	return out
}

func hmNumbers(fs []avtypes.Fragment) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = aws.ToString(f.FragmentNumber)
	}
	return out
}

// hmMs is a ListFragments timestamp in epoch ms (the SDK reads the JSON
// number as a float, so round).
func hmMs(t *time.Time) int64 { return t.Round(time.Millisecond).UnixMilli() }

func hmSelector(kind avtypes.HLSFragmentSelectorType, from, to time.Time) *avtypes.HLSFragmentSelector {
	r := &avtypes.HLSTimestampRange{StartTimestamp: aws.Time(from)}
	if !to.IsZero() {
		r.EndTimestamp = aws.Time(to)
	}
	return &avtypes.HLSFragmentSelector{FragmentSelectorType: kind, TimestampRange: r}
}

// hmHLS asks for an HLS session URL and fails the test on an error.
func hmHLS(t *testing.T, s *server, in kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput) string {
	t.Helper()
	out, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), &in)
	if err != nil {
		t.Fatalf("GetHLSStreamingSessionURL(%s): %v", hmDescribe(in), err)
	}
	return aws.ToString(out.HLSStreamingSessionURL)
}

func hmDescribe(in kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput) string {
	d := fmt.Sprintf("%s %s", aws.ToString(in.StreamName), in.PlaybackMode)
	if in.DiscontinuityMode != "" {
		d += " " + string(in.DiscontinuityMode)
	}
	if in.MaxMediaPlaylistFragmentResults != nil {
		d += fmt.Sprintf(" max %d", *in.MaxMediaPlaylistFragmentResults)
	}
	if in.Expires != nil {
		d += fmt.Sprintf(" expires %d", *in.Expires)
	}
	return d
}

func hmMediaURL(master string) string {
	return strings.Replace(master, "getHLSMasterPlaylist", "getHLSMediaPlaylist", 1) + "&TrackNumber=1"
}

// hmEntry is one media segment of a media playlist.
type hmEntry struct {
	fragment string // FragmentNumber of its URI
	disc     bool   // an EXT-X-DISCONTINUITY precedes it
	mapSeq   string // SequenceNumber of an EXT-X-MAP just before it, if any
	pdt      string // its EXT-X-PROGRAM-DATE-TIME, if any
	extinf   string // its EXTINF duration as written
}

type hmPlaylist struct {
	raw      string
	seq      int64
	dseq     int64
	hasDSeq  bool
	endlist  bool
	entries  []hmEntry
	discTags int
}

var (
	hmFragmentRe = regexp.MustCompile(`FragmentNumber=(\d+)`)
	hmMapSeqRe   = regexp.MustCompile(`SequenceNumber=(\d+)`)
)

func hmParse(t *testing.T, body string) hmPlaylist {
	t.Helper()
	p := hmPlaylist{raw: body}
	var cur hmEntry
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			p.seq, _ = strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
		case strings.HasPrefix(line, "#EXT-X-DISCONTINUITY-SEQUENCE:"):
			p.dseq, _ = strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-DISCONTINUITY-SEQUENCE:"), 10, 64)
			p.hasDSeq = true
		case line == "#EXT-X-DISCONTINUITY":
			cur.disc = true
			p.discTags++
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			m := hmMapSeqRe.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("EXT-X-MAP without a SequenceNumber: %s", line)
			}
			cur.mapSeq = m[1]
		case strings.HasPrefix(line, "#EXT-X-PROGRAM-DATE-TIME:"):
			cur.pdt = strings.TrimPrefix(line, "#EXT-X-PROGRAM-DATE-TIME:")
		case strings.HasPrefix(line, "#EXTINF:"):
			cur.extinf = strings.TrimSuffix(strings.TrimPrefix(line, "#EXTINF:"), ",")
		case line == "#EXT-X-ENDLIST":
			p.endlist = true
		case strings.HasPrefix(line, "#"):
		default:
			m := hmFragmentRe.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("segment URI without a FragmentNumber: %s", line)
			}
			cur.fragment = m[1]
			p.entries = append(p.entries, cur)
			cur = hmEntry{}
		}
	}
	return p
}

func (p hmPlaylist) fragments() []string {
	out := make([]string, len(p.entries))
	for i, e := range p.entries {
		out[i] = e.fragment
	}
	return out
}

func hmGetPlaylist(t *testing.T, masterURL string) hmPlaylist {
	t.Helper()
	return hmParse(t, httpGet(t, hmMediaURL(masterURL), 200))
}

// hmWantErr requires err to be the KVS exception of type E.
func hmWantErr[E error](t *testing.T, what string, err error) {
	t.Helper()
	var target E
	if !errors.As(err, &target) {
		t.Fatalf("%s: got %v, want %T", what, err, target)
	}
}

// hmFrameSizes decodes every video frame of a URL with ffprobe and counts
// them per resolution, failing on any error ffprobe reports.
func hmFrameSizes(t *testing.T, url string) map[string]int {
	t.Helper()
	cmd := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=width,height",
		"-of", "csv=p=0", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil || strings.TrimSpace(stderr.String()) != "" {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, stderr.String())
	}
	out := stdout.Bytes()
	sizes := map[string]int{}
	// A frame with side data (x264's SEI) gets an empty third field.
	for _, line := range strings.Fields(string(out)) {
		if f := strings.Split(line, ","); len(f) >= 2 {
			sizes[f[0]+"x"+f[1]]++
		}
	}
	return sizes
}

// 1. LIVE_REPLAY: a recorded stream replayed from its StartTimestamp gains
// one fragment per fragment duration of wall time, never more than the
// time elapsed allows and never fewer; keeps the newest 5 by default; a
// fragment keeps its media sequence number across reloads; without an
// EndTimestamp the playlist never ends, with one it ends (ENDLIST) once the
// virtual clock passes it and then plays exactly its range.
func TestHLSModesLiveReplay(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	m := hmMedia(t, "replay", "320x240", 8, 25)
	createStream(t, s, "replay", 1)
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	hmPut(t, s, "replay", m, start)
	frags := hmList(t, s, "replay", avtypes.FragmentSelectorTypeProducerTimestamp, start, start.Add(time.Minute))
	if len(frags) != 8 {
		t.Fatalf("%d fragments, want 8", len(frags))
	}
	nums := hmNumbers(frags)
	starts := make([]int64, len(frags))
	for i, f := range frags {
		starts[i] = hmMs(f.ProducerTimestamp)
	}
	first := starts[0]
	// revealed is how many fragments start by virtual time v (at most cap).
	revealed := func(v, cap int64) int {
		n := 0
		for _, st := range starts {
			if st <= min(v, cap) {
				n++
			}
		}
		return n
	}
	type session struct {
		name   string
		url    string
		t0, t1 time.Time // around the call that created it
		end    int64     // EndTimestamp in ms, or 1<<62
		seqOf  map[string]int64
		counts []int // fragments revealed, per reload
		ended  bool
	}
	open := func(name string, end int64) *session {
		sel := hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, time.UnixMilli(first), time.Time{})
		ss := &session{name: name, end: 1 << 62, seqOf: map[string]int64{}}
		if end != 0 {
			sel.TimestampRange.EndTimestamp = aws.Time(time.UnixMilli(end))
			ss.end = end
		}
		ss.t0 = time.Now()
		ss.url = hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("replay"),
			PlaybackMode: avtypes.HLSPlaybackModeLiveReplay, HLSFragmentSelector: sel})
		ss.t1 = time.Now()
		return ss
	}
	openEnded := open("open-ended", 0)
	endAt := first + 2500 // within the 3rd fragment: the replay ends with 3
	bounded := open("bounded", endAt)
	const slackMs = 2 // the server's clock reads whole ms
	check := func(ss *session) {
		g0 := time.Now()
		pl := hmGetPlaylist(t, ss.url)
		g1 := time.Now()
		lo := revealed(first+g0.Sub(ss.t1).Milliseconds()-slackMs, ss.end)
		hi := revealed(first+g1.Sub(ss.t0).Milliseconds()+slackMs, ss.end)
		got := int(pl.seq) + len(pl.entries)
		if got < lo || got > hi {
			t.Fatalf("%s session, %v after it began: the playlist reaches fragment %d (MEDIA-SEQUENCE %d + %d listed); "+
				"the virtual clock allows %d to %d\n%s", ss.name, g0.Sub(ss.t1), got, pl.seq, len(pl.entries), lo, hi, pl.raw)
		}
		if want := min(got, 5); len(pl.entries) != want {
			t.Fatalf("%s session lists %d fragments of %d revealed, want the newest %d\n%s", ss.name, len(pl.entries), got, want, pl.raw)
		}
		if gotNums, want := strings.Join(pl.fragments(), ","), strings.Join(nums[got-len(pl.entries):got], ","); gotNums != want {
			t.Fatalf("%s session lists %s, want %s", ss.name, gotNums, want)
		}
		for i, e := range pl.entries {
			seq := pl.seq + int64(i)
			if old, ok := ss.seqOf[e.fragment]; ok && old != seq {
				t.Fatalf("%s session: fragment %s had media sequence %d, now %d", ss.name, e.fragment, old, seq)
			}
			ss.seqOf[e.fragment] = seq
		}
		if n := len(ss.counts); n > 0 && got < ss.counts[n-1] {
			t.Fatalf("%s session went back from %d to %d fragments", ss.name, ss.counts[n-1], got)
		}
		ss.counts = append(ss.counts, got)
		mustEnd := first+g0.Sub(ss.t1).Milliseconds()-slackMs > ss.end
		mayEnd := first+g1.Sub(ss.t0).Milliseconds()+slackMs > ss.end
		switch {
		case pl.endlist && !mayEnd:
			t.Fatalf("%s session ended %v after it began, before its EndTimestamp\n%s", ss.name, g1.Sub(ss.t0), pl.raw)
		case !pl.endlist && mustEnd:
			t.Fatalf("%s session still open %v after it began, past its EndTimestamp\n%s", ss.name, g0.Sub(ss.t1), pl.raw)
		}
		if pl.endlist {
			ss.ended = true
		}
	}
	for time.Since(openEnded.t1) < 5600*time.Millisecond {
		check(openEnded)
		check(bounded)
		time.Sleep(100 * time.Millisecond)
	}
	// It grew from one fragment to six (each reload checked the bounds).
	if c := openEnded.counts; c[0] > 2 || c[len(c)-1] < 6 {
		t.Fatalf("over 5.6 s the open-ended replay showed %v fragments", c)
	}
	if openEnded.ended || !bounded.ended {
		t.Fatalf("ENDLIST: open-ended session %v, bounded session %v", openEnded.ended, bounded.ended)
	}
	// The window slid (6 or more revealed, 5 listed) and sequence numbers
	// count from the first fragment.
	for i, n := range nums[:6] {
		if seq, ok := openEnded.seqOf[n]; !ok || seq != int64(i) {
			t.Fatalf("fragment %d (%s) had media sequence %d (listed %v), want %d", i, n, seq, ok, i)
		}
	}
	// The ended replay plays exactly its three fragments, frame-exact.
	if vf, _ := ffprobeURL(t, bounded.url); vf != 75 {
		t.Fatalf("the ended LIVE_REPLAY plays %d frames, want 75 (3 fragments)", vf)
	}
}

// 2. DiscontinuityMode: two bursts 5 s apart in producer time, sent as two
// PutMedia sessions of the same producer (same track header). ALWAYS
// marks every fragment boundary and counts them in DISCONTINUITY-SEQUENCE,
// NEVER marks none, ON_DISCONTINUITY only the gap; every variant still
// plays frame-exact. (No B-frames here: TestHLSModesFragmentLengthBFrames
// covers their fragment lengths, on which ON_DISCONTINUITY depends.)
func TestHLSModesDiscontinuity(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	m := hmMedia(t, "burst", "320x240", 2, 25, "-bf", "0")
	// The producer SDK keeps one segment UID per stream across reconnects.
	m.Header.SegmentUID = []byte("kinema-e2e-segm1")
	createStream(t, s, "gap", 1)
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	hmPut(t, s, "gap", m, t0)
	hmPut(t, s, "gap", m, t0.Add(7*time.Second)) // 2 s of media, then a 5 s gap
	frags := hmList(t, s, "gap", avtypes.FragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))
	if len(frags) != 4 || hmMs(frags[2].ProducerTimestamp)-hmMs(frags[1].ProducerTimestamp) != 6000 {
		t.Fatalf("fragments %v", frags)
	}
	nums := hmNumbers(frags)
	sel := hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))
	session := func(mode avtypes.HLSDiscontinuityMode, container avtypes.ContainerFormat) string {
		return hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("gap"),
			PlaybackMode: avtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: sel, DiscontinuityMode: mode, ContainerFormat: container})
	}
	discAt := func(pl hmPlaylist) []int {
		var at []int
		for i, e := range pl.entries {
			if e.disc {
				at = append(at, i)
			}
		}
		return at
	}
	cases := []struct {
		mode      avtypes.HLSDiscontinuityMode
		container avtypes.ContainerFormat
		want      []int // entries preceded by EXT-X-DISCONTINUITY
		dseq      bool  // EXT-X-DISCONTINUITY-SEQUENCE:0 present
	}{
		{avtypes.HLSDiscontinuityModeAlways, "", []int{1, 2, 3}, true},
		{avtypes.HLSDiscontinuityModeNever, "", nil, false},
		{"", "", nil, false}, // the default with PRODUCER_TIMESTAMP is NEVER
		{avtypes.HLSDiscontinuityModeOnDiscontinuity, "", []int{2}, false},
		{avtypes.HLSDiscontinuityModeOnDiscontinuity, avtypes.ContainerFormatMpegTs, []int{2}, false},
	}
	for _, c := range cases {
		url := session(c.mode, c.container)
		pl := hmGetPlaylist(t, url)
		if strings.Join(pl.fragments(), ",") != strings.Join(nums, ",") || !pl.endlist {
			t.Fatalf("%s: playlist\n%s", c.mode, pl.raw)
		}
		if got := discAt(pl); fmt.Sprint(got) != fmt.Sprint(c.want) || pl.discTags != len(c.want) {
			t.Fatalf("%q %s: discontinuities before entries %v, want %v\n%s", c.mode, c.container, got, c.want, pl.raw)
		}
		if c.dseq && (!pl.hasDSeq || pl.dseq != 0) {
			t.Fatalf("%q: want EXT-X-DISCONTINUITY-SEQUENCE:0\n%s", c.mode, pl.raw)
		}
		if pl.hasDSeq && pl.dseq != 0 {
			t.Fatalf("%q: an ON_DEMAND playlist from the first fragment has DISCONTINUITY-SEQUENCE %d", c.mode, pl.dseq)
		}
		if vf, _ := ffprobeURL(t, url); vf != 100 {
			t.Fatalf("%q %s plays %d frames, want 100", c.mode, c.container, vf)
		}
	}
	// The SERVER_TIMESTAMP default is ALWAYS.
	now := time.Now()
	pl := hmGetPlaylist(t, hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("gap"),
		PlaybackMode:        avtypes.HLSPlaybackModeOnDemand,
		HLSFragmentSelector: hmSelector(avtypes.HLSFragmentSelectorTypeServerTimestamp, now.Add(-time.Minute), now)}))
	if got := discAt(pl); fmt.Sprint(got) != "[1 2 3]" || !pl.hasDSeq {
		t.Fatalf("SERVER_TIMESTAMP default: discontinuities before %v\n%s", got, pl.raw)
	}
}

// 2b. Fragment lengths with B-frames. The producer sends fragments back to
// back, so each lasts until the next starts: ListFragments'
// FragmentLengthInMilliseconds and EXTINF say 1 s for 1 s GOPs, and
// ON_DISCONTINUITY sees no gap or overlap in the contiguous stream. x264's
// defaults (B-frames) send frames in decode order, not time order.
func TestHLSModesFragmentLengthBFrames(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	m := hmMedia(t, "bframes", "320x240", 4, 25)
	createStream(t, s, "bframes", 1)
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	hmPut(t, s, "bframes", m, t0)
	frags := hmList(t, s, "bframes", avtypes.FragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))
	if len(frags) != 4 {
		t.Fatalf("%d fragments", len(frags))
	}
	var lengths []int64
	for i, f := range frags {
		if want := t0.UnixMilli() + int64(i)*1000; hmMs(f.ProducerTimestamp) != want {
			t.Fatalf("fragment %d starts at %d, want %d", i, hmMs(f.ProducerTimestamp), want)
		}
		lengths = append(lengths, f.FragmentLengthInMilliseconds)
	}
	if fmt.Sprint(lengths) != "[1000 1000 1000 1000]" {
		t.Errorf("ListFragments: FragmentLengthInMilliseconds %v for four 1 s fragments sent back to back", lengths)
	}
	pl := hmGetPlaylist(t, hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("bframes"),
		PlaybackMode: avtypes.HLSPlaybackModeOnDemand, DiscontinuityMode: avtypes.HLSDiscontinuityModeOnDiscontinuity,
		HLSFragmentSelector: hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))}))
	var extinf []string
	for _, e := range pl.entries {
		extinf = append(extinf, e.extinf)
	}
	if fmt.Sprint(extinf) != "[1.000 1.000 1.000 1.000]" || pl.discTags != 0 {
		t.Errorf("ON_DISCONTINUITY over a contiguous stream: EXTINF %v, %d discontinuities, want 1.000 each and none\n%s",
			extinf, pl.discTags, pl.raw)
	}
}

// 2c. A producer that restarts (a new PutMedia session with a new segment
// UID, as a restarted SDK sends) with the same codec private data continues
// the same stream: no EXT-X-DISCONTINUITY in NEVER mode, one init segment,
// and a DASH or ON_DEMAND session over both parts plays all of them.
func TestHLSModesProducerRestartSameCodec(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	m := hmMedia(t, "restart", "160x120", 2, 25, "-bf", "0")
	createStream(t, s, "restart", 1)
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	hmPut(t, s, "restart", m, t0) // the producer picks a random segment UID per session
	hmPut(t, s, "restart", m, t0.Add(2*time.Second))
	if n := len(hmList(t, s, "restart", avtypes.FragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))); n != 4 {
		t.Fatalf("%d fragments", n)
	}
	pl := hmGetPlaylist(t, hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("restart"),
		PlaybackMode: avtypes.HLSPlaybackModeOnDemand, DiscontinuityMode: avtypes.HLSDiscontinuityModeNever,
		HLSFragmentSelector: hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))}))
	if len(pl.entries) != 4 || pl.discTags != 0 || strings.Count(pl.raw, "#EXT-X-MAP:") != 1 {
		t.Errorf("HLS NEVER over two producer sessions with the same codec private data: %d discontinuities, %d EXT-X-MAP; "+
			"want none and one\n%s", pl.discTags, strings.Count(pl.raw, "#EXT-X-MAP:"), pl.raw)
	}
	out, err := s.archived().GetDASHStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
		StreamName: aws.String("restart"), PlaybackMode: avtypes.DASHPlaybackModeOnDemand,
		DASHFragmentSelector: &avtypes.DASHFragmentSelector{FragmentSelectorType: avtypes.DASHFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.DASHTimestampRange{StartTimestamp: aws.Time(t0), EndTimestamp: aws.Time(t0.Add(time.Minute))}}})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(out.DASHStreamingSessionURL)
	if n := strings.Count(httpGet(t, url, 200), "<S "); n != 4 {
		t.Errorf("DASH ON_DEMAND over two producer sessions with the same codec private data lists %d of 4 fragments", n)
	}
	if vf, _ := ffprobeURL(t, url); vf != 100 {
		t.Errorf("DASH ON_DEMAND over two producer sessions plays %d of 100 frames", vf)
	}
}

// 2d. In a sliding window (LIVE), EXT-X-DISCONTINUITY-SEQUENCE counts the
// discontinuities that slid out (RFC 8216 4.3.3.3, 6.2.2): a player uses
// it to line up reloads.
func TestHLSModesDiscontinuitySequence(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	m := hmMedia(t, "burst", "160x120", 2, 25, "-bf", "0")
	m.Header.SegmentUID = []byte("kinema-e2e-segm2")
	createStream(t, s, "gap", 1)
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	hmPut(t, s, "gap", m, t0)
	hmPut(t, s, "gap", m, t0.Add(7*time.Second))
	frags := hmList(t, s, "gap", avtypes.FragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))
	if len(frags) != 4 {
		t.Fatalf("%d fragments", len(frags))
	}
	nums := hmNumbers(frags)
	live := func(mode avtypes.HLSDiscontinuityMode, n int64) hmPlaylist {
		return hmGetPlaylist(t, hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("gap"),
			PlaybackMode: avtypes.HLSPlaybackModeLive, DiscontinuityMode: mode, MaxMediaPlaylistFragmentResults: aws.Int64(n)}))
	}
	// ALWAYS, newest 2 of 4: the discontinuities before fragments 1 and 2
	// are gone.
	pl := live(avtypes.HLSDiscontinuityModeAlways, 2)
	if strings.Join(pl.fragments(), ",") != strings.Join(nums[2:], ",") || pl.seq != 2 || !pl.hasDSeq || pl.dseq != 2 ||
		pl.discTags != 1 || pl.endlist {
		t.Fatalf("LIVE ALWAYS, newest 2: want fragments 2 and 3, MEDIA-SEQUENCE 2, DISCONTINUITY-SEQUENCE 2, one tag\n%s", pl.raw)
	}
	// ON_DISCONTINUITY, newest 3: the gap is listed; newest 2: it slid out.
	pl = live(avtypes.HLSDiscontinuityModeOnDiscontinuity, 3)
	if pl.discTags != 1 || !pl.entries[1].disc || (pl.hasDSeq && pl.dseq != 0) {
		t.Fatalf("LIVE ON_DISCONTINUITY, newest 3: want the gap before the 2nd entry, sequence 0\n%s", pl.raw)
	}
	pl = live(avtypes.HLSDiscontinuityModeOnDiscontinuity, 2)
	if pl.discTags != 0 || pl.dseq != 1 {
		t.Fatalf("LIVE ON_DISCONTINUITY, newest 2: the gap's discontinuity slid out of the window, so "+
			"EXT-X-DISCONTINUITY-SEQUENCE must be 1 (present %v, %d)\n%s", pl.hasDSeq, pl.dseq, pl.raw)
	}
}

// 3. DisplayFragmentTimestamp ALWAYS gives each fragment an
// EXT-X-PROGRAM-DATE-TIME equal to its producer or server time from
// ListFragments, per the selector (DASH: kvs:ts); NEVER and the default
// give none.
func TestHLSModesProgramDateTime(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	m := hmMedia(t, "pdt", "160x120", 3, 25)
	createStream(t, s, "pdt", 1)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).Add(123 * time.Millisecond)
	hmPut(t, s, "pdt", m, t0)
	now := time.Now()
	frags := hmList(t, s, "pdt", avtypes.FragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))
	if len(frags) != 3 || hmMs(frags[0].ProducerTimestamp) != t0.UnixMilli() {
		t.Fatalf("fragments %v", frags)
	}
	format := func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }
	for _, c := range []struct {
		name    string
		mode    avtypes.HLSPlaybackMode
		sel     *avtypes.HLSFragmentSelector
		display avtypes.HLSDisplayFragmentTimestamp
		want    func(avtypes.Fragment) string // "" for no PROGRAM-DATE-TIME
	}{
		{"producer", avtypes.HLSPlaybackModeOnDemand, hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute)),
			avtypes.HLSDisplayFragmentTimestampAlways, func(f avtypes.Fragment) string { return format(hmMs(f.ProducerTimestamp)) }},
		{"server", avtypes.HLSPlaybackModeOnDemand, hmSelector(avtypes.HLSFragmentSelectorTypeServerTimestamp, now.Add(-time.Minute), now),
			avtypes.HLSDisplayFragmentTimestampAlways, func(f avtypes.Fragment) string { return format(hmMs(f.ServerTimestamp)) }},
		{"live-producer", avtypes.HLSPlaybackModeLive, &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp},
			avtypes.HLSDisplayFragmentTimestampAlways, func(f avtypes.Fragment) string { return format(hmMs(f.ProducerTimestamp)) }},
		{"live-server", avtypes.HLSPlaybackModeLive, nil,
			avtypes.HLSDisplayFragmentTimestampAlways, func(f avtypes.Fragment) string { return format(hmMs(f.ServerTimestamp)) }},
		{"never", avtypes.HLSPlaybackModeOnDemand, hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute)),
			avtypes.HLSDisplayFragmentTimestampNever, func(avtypes.Fragment) string { return "" }},
		{"default", avtypes.HLSPlaybackModeOnDemand, hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute)),
			"", func(avtypes.Fragment) string { return "" }},
	} {
		url := hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("pdt"),
			PlaybackMode: c.mode, HLSFragmentSelector: c.sel, DisplayFragmentTimestamp: c.display})
		pl := hmGetPlaylist(t, url)
		if len(pl.entries) != len(frags) {
			t.Fatalf("%s: %d entries\n%s", c.name, len(pl.entries), pl.raw)
		}
		for i, e := range pl.entries {
			if e.fragment != aws.ToString(frags[i].FragmentNumber) || e.pdt != c.want(frags[i]) {
				t.Fatalf("%s: entry %d is fragment %s at %q, want %s at %q\n%s", c.name, i, e.fragment, e.pdt,
					aws.ToString(frags[i].FragmentNumber), c.want(frags[i]), pl.raw)
			}
		}
		if c.name == "producer" {
			if vf, _ := ffprobeURL(t, url); vf != 75 {
				t.Fatalf("with PROGRAM-DATE-TIME the session plays %d frames, want 75", vf)
			}
		}
	}
	// DASH: DisplayFragmentTimestamp ALWAYS puts the same times in kvs:ts.
	for _, kind := range []avtypes.DASHFragmentSelectorType{avtypes.DASHFragmentSelectorTypeProducerTimestamp, avtypes.DASHFragmentSelectorTypeServerTimestamp} {
		from, to := t0, t0.Add(time.Minute)
		if kind == avtypes.DASHFragmentSelectorTypeServerTimestamp {
			from, to = now.Add(-time.Minute), now
		}
		out, err := s.archived().GetDASHStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
			StreamName: aws.String("pdt"), PlaybackMode: avtypes.DASHPlaybackModeOnDemand,
			DisplayFragmentTimestamp: avtypes.DASHDisplayFragmentTimestampAlways,
			DASHFragmentSelector: &avtypes.DASHFragmentSelector{FragmentSelectorType: kind,
				TimestampRange: &avtypes.DASHTimestampRange{StartTimestamp: aws.Time(from), EndTimestamp: aws.Time(to)}}})
		if err != nil {
			t.Fatal(err)
		}
		mpd := httpGet(t, aws.ToString(out.DASHStreamingSessionURL), 200)
		var want []string
		for _, f := range frags {
			ts := f.ProducerTimestamp
			if kind == avtypes.DASHFragmentSelectorTypeServerTimestamp {
				ts = f.ServerTimestamp
			}
			ms := hmMs(ts)
			want = append(want, fmt.Sprintf(`kvs:ts="%d.%03d"`, ms/1000, ms%1000))
		}
		got := regexp.MustCompile(`kvs:ts="[0-9.]+"`).FindAllString(mpd, -1)
		// One SegmentTimeline per track; the stream has one track.
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("DASH %s: %v, want %v\n%s", kind, got, want, mpd)
		}
	}
}

// hmIngestMany sends 1025 fragments of two frames (80 ms) from t0, as fast
// as the server takes them, and lists them by producer time.
func hmIngestMany(t *testing.T, s *server, name string, t0 time.Time) []avtypes.Fragment {
	t.Helper()
	m := hmMedia(t, "tiny", "64x64", 2, 2, "-bf", "0") // 25 fragments, sent 41 times
	createStream(t, s, name, 1)
	began := time.Now()
	hmPut(t, s, name, m, t0, func(c *producer.Config) { c.Loop = 41 })
	t.Logf("1025 fragments ingested in %v", time.Since(began))
	frags := hmList(t, s, name, avtypes.FragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Hour))
	if len(frags) != 1025 {
		t.Fatalf("%d fragments listed, want 1025", len(frags))
	}
	return frags
}

// 4. MaxMediaPlaylistFragmentResults and the argument checks.
// ON_DEMAND lists the oldest N (default 1000), LIVE the newest N (default
// 5); values outside 1-5000, Expires outside 300-43200 (the SDK does not
// check), a range over 24 h, a range without fragments and a stream that
// keeps no data are refused with KVS's exceptions.
func TestHLSModesPlaylistLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	nums := hmNumbers(hmIngestMany(t, s, "many", t0))
	sel := hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Hour))
	in := func(mode avtypes.HLSPlaybackMode, n *int64) kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput {
		i := kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("many"), PlaybackMode: mode,
			MaxMediaPlaylistFragmentResults: n}
		if mode != avtypes.HLSPlaybackModeLive {
			i.HLSFragmentSelector = sel
		}
		return i
	}
	// LIVE first: it needs a fragment received in the last 30 s.
	for _, c := range []struct {
		n    *int64
		want int
	}{{nil, 5}, {aws.Int64(3), 3}, {aws.Int64(1), 1}} {
		pl := hmGetPlaylist(t, hmHLS(t, s, in(avtypes.HLSPlaybackModeLive, c.n)))
		// (MEDIA-SEQUENCE: see TestHLSModesMediaSequenceSameMs.)
		if strings.Join(pl.fragments(), ",") != strings.Join(nums[len(nums)-c.want:], ",") || pl.endlist {
			t.Fatalf("LIVE max %v: want the newest %d, no ENDLIST\n%s", c.n, c.want, pl.raw)
		}
	}
	for _, c := range []struct {
		n    *int64
		want int
	}{{nil, 1000}, {aws.Int64(7), 7}, {aws.Int64(1), 1}, {aws.Int64(5000), 1025}} {
		pl := hmGetPlaylist(t, hmHLS(t, s, in(avtypes.HLSPlaybackModeOnDemand, c.n)))
		if strings.Join(pl.fragments(), ",") != strings.Join(nums[:c.want], ",") || pl.seq != 0 || !pl.endlist {
			t.Fatalf("ON_DEMAND max %v: %d entries, want the oldest %d, MEDIA-SEQUENCE 0, ENDLIST", c.n, len(pl.entries), c.want)
		}
	}
	// DASH: MaxManifestFragmentResults, the same rules.
	dash := func(mode avtypes.DASHPlaybackMode, n *int64) (string, error) {
		i := &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{StreamName: aws.String("many"), PlaybackMode: mode,
			MaxManifestFragmentResults: n, DisplayFragmentNumber: avtypes.DASHDisplayFragmentNumberAlways}
		if mode != avtypes.DASHPlaybackModeLive {
			i.DASHFragmentSelector = &avtypes.DASHFragmentSelector{FragmentSelectorType: avtypes.DASHFragmentSelectorTypeProducerTimestamp,
				TimestampRange: &avtypes.DASHTimestampRange{StartTimestamp: aws.Time(t0), EndTimestamp: aws.Time(t0.Add(time.Hour))}}
		}
		out, err := s.archived().GetDASHStreamingSessionURL(ctxT(t), i)
		if err != nil {
			return "", err
		}
		return aws.ToString(out.DASHStreamingSessionURL), nil
	}
	fnRe := regexp.MustCompile(`kvs:fn="(\d+)"`)
	for _, c := range []struct {
		mode avtypes.DASHPlaybackMode
		n    *int64
		want []string
	}{
		{avtypes.DASHPlaybackModeOnDemand, nil, nums[:1000]},
		{avtypes.DASHPlaybackModeOnDemand, aws.Int64(4), nums[:4]},
		{avtypes.DASHPlaybackModeLive, nil, nums[len(nums)-5:]},
		{avtypes.DASHPlaybackModeLive, aws.Int64(2), nums[len(nums)-2:]},
	} {
		url, err := dash(c.mode, c.n)
		if err != nil {
			t.Fatalf("DASH %s max %v: %v", c.mode, c.n, err)
		}
		var got []string
		for _, m := range fnRe.FindAllStringSubmatch(httpGet(t, url, 200), -1) {
			got = append(got, m[1])
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Fatalf("DASH %s max %v: %d fragments in the MPD, want %d", c.mode, c.n, len(got), len(c.want))
		}
	}
	for _, n := range []int64{0, 5001, -1} {
		_, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), ptr(in(avtypes.HLSPlaybackModeOnDemand, aws.Int64(n))))
		hmWantErr[*avtypes.InvalidArgumentException](t, fmt.Sprintf("HLS MaxMediaPlaylistFragmentResults %d", n), err)
		_, err = s.archived().GetHLSStreamingSessionURL(ctxT(t), ptr(in(avtypes.HLSPlaybackModeLive, aws.Int64(n))))
		hmWantErr[*avtypes.InvalidArgumentException](t, fmt.Sprintf("LIVE MaxMediaPlaylistFragmentResults %d", n), err)
		_, err = dash(avtypes.DASHPlaybackModeOnDemand, aws.Int64(n))
		hmWantErr[*avtypes.InvalidArgumentException](t, fmt.Sprintf("DASH MaxManifestFragmentResults %d", n), err)
	}
	// Expires: 300-43200 s.
	for _, c := range []struct {
		expires int32
		ok      bool
	}{{299, false}, {300, true}, {43200, true}, {43201, false}, {0, false}} {
		i := in(avtypes.HLSPlaybackModeOnDemand, nil)
		i.Expires = aws.Int32(c.expires)
		_, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), &i)
		if c.ok && err != nil {
			t.Fatalf("Expires %d: %v", c.expires, err)
		}
		if !c.ok {
			hmWantErr[*avtypes.InvalidArgumentException](t, fmt.Sprintf("Expires %d", c.expires), err)
		}
		_, err = s.archived().GetDASHStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
			StreamName: aws.String("many"), PlaybackMode: avtypes.DASHPlaybackModeLive, Expires: aws.Int32(c.expires)})
		if c.ok && err != nil {
			t.Fatalf("DASH Expires %d: %v", c.expires, err)
		}
		if !c.ok {
			hmWantErr[*avtypes.InvalidArgumentException](t, fmt.Sprintf("DASH Expires %d", c.expires), err)
		}
	}
	// Ranges: at most 24 h; an ON_DEMAND range must hold a fragment.
	ranged := func(mode avtypes.HLSPlaybackMode, from, to time.Time) error {
		_, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
			StreamName: aws.String("many"), PlaybackMode: mode,
			HLSFragmentSelector: hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, from, to)})
		return err
	}
	if err := ranged(avtypes.HLSPlaybackModeOnDemand, t0, t0.Add(24*time.Hour)); err != nil {
		t.Fatalf("a 24 h range: %v", err)
	}
	hmWantErr[*avtypes.InvalidArgumentException](t, "a range of 24 h + 1 ms",
		ranged(avtypes.HLSPlaybackModeOnDemand, t0, t0.Add(24*time.Hour+time.Millisecond)))
	hmWantErr[*avtypes.InvalidArgumentException](t, "a range of 25 h", ranged(avtypes.HLSPlaybackModeOnDemand, t0.Add(-time.Hour), t0.Add(24*time.Hour)))
	hmWantErr[*avtypes.InvalidArgumentException](t, "LIVE_REPLAY over 25 h", ranged(avtypes.HLSPlaybackModeLiveReplay, t0.Add(-time.Hour), t0.Add(24*time.Hour)))
	hmWantErr[*avtypes.InvalidArgumentException](t, "End before Start", ranged(avtypes.HLSPlaybackModeOnDemand, t0.Add(time.Second), t0))
	hmWantErr[*avtypes.InvalidArgumentException](t, "ON_DEMAND without EndTimestamp", ranged(avtypes.HLSPlaybackModeOnDemand, t0, time.Time{}))
	hmWantErr[*avtypes.ResourceNotFoundException](t, "a range before the stream", ranged(avtypes.HLSPlaybackModeOnDemand, t0.Add(-10*time.Minute), t0.Add(-time.Minute)))
	hmWantErr[*avtypes.ResourceNotFoundException](t, "a range after the stream", ranged(avtypes.HLSPlaybackModeOnDemand, t0.Add(10*time.Minute), t0.Add(11*time.Minute)))
	// A stream that keeps no data.
	createStream(t, s, "noretention", 0)
	for _, mode := range []avtypes.HLSPlaybackMode{avtypes.HLSPlaybackModeLive, avtypes.HLSPlaybackModeOnDemand} {
		i := kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("noretention"), PlaybackMode: mode}
		if mode == avtypes.HLSPlaybackModeOnDemand {
			i.HLSFragmentSelector = sel
		}
		_, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), &i)
		hmWantErr[*avtypes.NoDataRetentionException](t, "HLS "+string(mode)+" on a stream with DataRetentionInHours 0", err)
	}
	_, err := s.archived().GetDASHStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
		StreamName: aws.String("noretention")})
	hmWantErr[*avtypes.NoDataRetentionException](t, "DASH on a stream with DataRetentionInHours 0", err)
}

func ptr[T any](v T) *T { return &v }

// 4b. MEDIA-SEQUENCE numbers fragments in the session's order even when
// several arrived in the same millisecond (a producer flushing its buffer
// after a reconnect): LIVE selects by arrival, so the newest N starting at
// fragment k (counting from 0) have MEDIA-SEQUENCE k, whatever the server
// clock says; otherwise a fragment changes number as the window slides.
func TestHLSModesMediaSequenceSameMs(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	frags := hmIngestMany(t, s, "burst", time.Now().Add(-time.Hour).Truncate(time.Second))
	// Fragments ingested within the same ms as the one before them.
	var ties []int
	for k := 1; k < len(frags); k++ {
		if hmMs(frags[k].ServerTimestamp) == hmMs(frags[k-1].ServerTimestamp) {
			ties = append(ties, k)
		}
	}
	// The newest N that start at the last such fragment. Whether any tie
	// happens depends on the machine (the race detector slows ingest down);
	// the rule is also pinned at the index level (indextest, CountFragments
	// with a tie). Without a tie, the window starts 10 fragments back.
	k := len(frags) - 10
	if len(ties) > 0 {
		k = ties[len(ties)-1]
	} else {
		t.Logf("no two of %d fragments arrived in the same ms on this run", len(frags))
	}
	n := int64(len(frags) - k)
	pl := hmGetPlaylist(t, hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("burst"),
		PlaybackMode: avtypes.HLSPlaybackModeLive, MaxMediaPlaylistFragmentResults: aws.Int64(n)}))
	if pl.fragments()[0] != aws.ToString(frags[k].FragmentNumber) || pl.seq != int64(k) {
		t.Fatalf("LIVE, newest %d: starts at fragment %s with MEDIA-SEQUENCE %d; want fragment %s (index %d, received in "+
			"the same ms as the one before it) with MEDIA-SEQUENCE %d", n, pl.fragments()[0], pl.seq, aws.ToString(frags[k].FragmentNumber), k, k)
	}
}

// 5. Codec private data changes between two PutMedia sessions (320x240,
// then 640x480): the ON_DEMAND playlist switches to a new init segment
// (EXT-X-MAP with another SequenceNumber) behind an EXT-X-DISCONTINUITY.
// Every frame of both parts decodes at its own resolution: through each
// part's init segment and fragments for fMP4 (ffmpeg's HLS demuxer keeps
// the first moov for the whole playlist: "Found duplicated MOOV Atom.
// Skipped it"), and through the playlist URL for MPEG-TS.
func TestHLSModesCodecChange(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	// No B-frames, so that ON_DISCONTINUITY sees no overlap (see
	// TestHLSModesFragmentLengthBFrames).
	small := hmMedia(t, "small", "320x240", 2, 25, "-bf", "0")
	large := hmMedia(t, "large", "640x480", 2, 25, "-bf", "0")
	createStream(t, s, "cpd", 1)
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	hmPut(t, s, "cpd", small, t0)
	hmPut(t, s, "cpd", large, t0.Add(2*time.Second)) // continues where the first ended
	frags := hmList(t, s, "cpd", avtypes.FragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))
	if len(frags) != 4 {
		t.Fatalf("%d fragments", len(frags))
	}
	sel := hmSelector(avtypes.HLSFragmentSelectorTypeProducerTimestamp, t0, t0.Add(time.Minute))
	for _, mode := range []avtypes.HLSDiscontinuityMode{"", avtypes.HLSDiscontinuityModeNever, avtypes.HLSDiscontinuityModeOnDiscontinuity} {
		url := hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cpd"),
			PlaybackMode: avtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: sel, DiscontinuityMode: mode})
		pl := hmGetPlaylist(t, url)
		e := pl.entries
		if strings.Join(pl.fragments(), ",") != strings.Join(hmNumbers(frags), ",") || pl.discTags != 1 ||
			e[0].mapSeq == "" || e[1].mapSeq != "" || e[3].mapSeq != "" || e[2].mapSeq == "" || e[2].mapSeq == e[0].mapSeq || !e[2].disc {
			t.Fatalf("%q: want an EXT-X-MAP before the 1st entry and, behind the only EXT-X-DISCONTINUITY, a new one before the 3rd\n%s", mode, pl.raw)
		}
		if mode != "" {
			continue
		}
		// Each part, as a player that honours EXT-X-MAP reads it.
		base := url[:strings.LastIndex(url, "/")+1]
		tok := url[strings.Index(url, "SessionToken="):]
		part := func(name string, init string, entries []hmEntry) map[string]int {
			b := []byte(httpGet(t, base+"getMP4InitFragment.mp4?"+tok+"&TrackNumber=1&SequenceNumber="+init, 200))
			for _, en := range entries {
				b = append(b, httpGet(t, base+"getMP4MediaFragment.mp4?FragmentNumber="+en.fragment+"&"+tok+"&TrackNumber=1", 200)...)
			}
			path := filepath.Join(t.TempDir(), name+".mp4")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return hmFrameSizes(t, path)
		}
		if got := part("first", e[0].mapSeq, e[:2]); fmt.Sprint(got) != "map[320x240:50]" {
			t.Fatalf("the first part decodes %v, want 50 frames at 320x240", got)
		}
		if got := part("second", e[2].mapSeq, e[2:]); fmt.Sprint(got) != "map[640x480:50]" {
			t.Fatalf("the second part decodes %v, want 50 frames at 640x480", got)
		}
	}
	url := hmHLS(t, s, kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cpd"),
		PlaybackMode: avtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: sel, ContainerFormat: avtypes.ContainerFormatMpegTs})
	pl := hmGetPlaylist(t, url)
	if pl.discTags != 1 || !pl.entries[2].disc || strings.Contains(pl.raw, "EXT-X-MAP") {
		t.Fatalf("MPEG-TS: want one EXT-X-DISCONTINUITY, before the 3rd entry, and no EXT-X-MAP\n%s", pl.raw)
	}
	if got := hmFrameSizes(t, url); fmt.Sprint(got) != "map[320x240:50 640x480:50]" {
		t.Fatalf("MPEG-TS decodes %v, want 50 frames at 320x240 and 50 at 640x480", got)
	}
}

// 6. The two clocks: producer timestamps an hour in the past. A range over
// the last minute finds the fragments by SERVER_TIMESTAMP and nothing by
// PRODUCER_TIMESTAMP; the producer's hour finds them by PRODUCER_TIMESTAMP.
func TestHLSModesTimestampSelector(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	m := hmMedia(t, "clocks", "160x120", 2, 25)
	createStream(t, s, "clocks", 1)
	t0 := time.Now().Add(-time.Hour)
	hmPut(t, s, "clocks", m, t0)
	now := time.Now()
	frags := hmList(t, s, "clocks", avtypes.FragmentSelectorTypeServerTimestamp, now.Add(-time.Minute), now)
	if len(frags) != 2 {
		t.Fatalf("%d fragments by server time", len(frags))
	}
	session := func(kind avtypes.HLSFragmentSelectorType, from, to time.Time) (string, error) {
		out, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
			StreamName: aws.String("clocks"), PlaybackMode: avtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: hmSelector(kind, from, to)})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.HLSStreamingSessionURL), nil
	}
	url, err := session(avtypes.HLSFragmentSelectorTypeServerTimestamp, now.Add(-time.Minute), now)
	if err != nil {
		t.Fatalf("SERVER_TIMESTAMP over the last minute: %v", err)
	}
	if pl := hmGetPlaylist(t, url); strings.Join(pl.fragments(), ",") != strings.Join(hmNumbers(frags), ",") {
		t.Fatalf("SERVER_TIMESTAMP playlist\n%s", pl.raw)
	}
	if vf, _ := ffprobeURL(t, url); vf != 50 {
		t.Fatalf("SERVER_TIMESTAMP session plays %d frames, want 50", vf)
	}
	_, err = session(avtypes.HLSFragmentSelectorTypeProducerTimestamp, now.Add(-time.Minute), now)
	hmWantErr[*avtypes.ResourceNotFoundException](t, "PRODUCER_TIMESTAMP over the last minute", err)
	url, err = session(avtypes.HLSFragmentSelectorTypeProducerTimestamp, t0.Add(-time.Second), t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("PRODUCER_TIMESTAMP over the producer's time: %v", err)
	}
	if pl := hmGetPlaylist(t, url); strings.Join(pl.fragments(), ",") != strings.Join(hmNumbers(frags), ",") {
		t.Fatalf("PRODUCER_TIMESTAMP playlist\n%s", pl.raw)
	}
	_, err = session(avtypes.HLSFragmentSelectorTypeServerTimestamp, t0.Add(-time.Second), t0.Add(time.Minute))
	hmWantErr[*avtypes.ResourceNotFoundException](t, "SERVER_TIMESTAMP over the producer's time", err)
	// DASH picks by the same clocks.
	dash := func(kind avtypes.DASHFragmentSelectorType, from, to time.Time) error {
		_, err := s.archived().GetDASHStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
			StreamName: aws.String("clocks"), PlaybackMode: avtypes.DASHPlaybackModeOnDemand,
			DASHFragmentSelector: &avtypes.DASHFragmentSelector{FragmentSelectorType: kind,
				TimestampRange: &avtypes.DASHTimestampRange{StartTimestamp: aws.Time(from), EndTimestamp: aws.Time(to)}}})
		return err
	}
	if err := dash(avtypes.DASHFragmentSelectorTypeServerTimestamp, now.Add(-time.Minute), now); err != nil {
		t.Fatalf("DASH SERVER_TIMESTAMP over the last minute: %v", err)
	}
	hmWantErr[*avtypes.ResourceNotFoundException](t, "DASH PRODUCER_TIMESTAMP over the last minute",
		dash(avtypes.DASHFragmentSelectorTypeProducerTimestamp, now.Add(-time.Minute), now))
}

// A session of a deleted stream stops playing: at once for what was not
// asked for yet, and within a second (the server's recheck of the stream)
// for a player already fetching.
func TestPlaybackAfterStreamDeleted(t *testing.T) {
	s := startServer(t)
	file := makeMedia(t, "gone.mkv", args(srcVideo, []string{"-t", "2"}, encX264)...)
	m, err := producer.OpenFile(ctxT(t), file)
	if err != nil {
		t.Fatal(err)
	}
	arn := createStream(t, s, "gone", 24)
	t0 := time.Now().Add(-time.Hour)
	hmPut(t, s, "gone", m, t0)
	out, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("gone"), PlaybackMode: avtypes.HLSPlaybackModeOnDemand,
		HLSFragmentSelector: &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.HLSTimestampRange{StartTimestamp: aws.Time(t0.Add(-time.Minute)), EndTimestamp: aws.Time(t0.Add(time.Minute))}}})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(out.HLSStreamingSessionURL)
	httpGet(t, url, 200)
	if _, err := s.kv().DeleteStream(ctxT(t), &kinesisvideo.DeleteStreamInput{StreamARN: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if body := httpGet(t, url, 404); !strings.Contains(body, "no longer exists") {
		t.Fatalf("after the stream was deleted: %s", body)
	}
}
