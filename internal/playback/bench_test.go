package playback

// Benchmarks for the playback performance targets (docs/benchmarks.md,
// "Playback"). Everything runs against a real archive: SQLite index and
// localfs segment files in the benchmark's temp dir, H.264 made by ffmpeg,
// fragments stored through Archive.Persist, requests answered by
// Server.ServeHTTP with real session tokens. No mocks.
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/playback/
//	go test -run '^$' -bench . -benchtime 3s ./internal/playback/
//
// The fixtures are built once per run of BenchmarkPlayback, lazily, by the
// first sub-benchmark that needs them, and live in that run's b.TempDir():
//
//   - month: a stream with 30 days of 2 s fragments (1,296,000 index rows,
//     committed with Index.CommitFragments in one-day batches), every row
//     pointing at one real stored cluster, so each listed fragment is also
//     servable;
//   - hour: a stream with one hour of real fragments (1,800 x 2 s of
//     1280x720 H.264 at 2 Mbit/s, about 0.9 GB), the 10 fragments ffmpeg made
//     re-timed one after another and stored with Archive.Persist.

import (
	"context"
	"errors"
	"fmt"
	"github.com/kinema/kinema/internal/bench"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/localfs"
	"github.com/kinema/kinema/internal/archive/sqlindex"
	"github.com/kinema/kinema/internal/media/fmp4"
	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/producer"
	"github.com/kinema/kinema/internal/stream"
)

const (
	benchFragMs      = 2000
	benchMonthDays   = 30
	benchMonthFrags  = benchMonthDays * 86_400_000 / benchFragMs // 1,296,000
	benchHourFrags   = 3_600_000 / benchFragMs                   // 1,800
	benchArrivalMs   = 300                                       // server time - producer time
	benchPlaylistMin = 1000                                      // latency samples for p50/p99
)

// benchEnv is one archive shared by the sub-benchmarks of one run.
type benchEnv struct {
	dir   string
	ctx   context.Context
	stop  context.CancelFunc
	ran   chan struct{}
	idx   *sqlindex.Index
	media *localfs.Store
	arc   *archive.Archive
	srv   *Server
	now   time.Time

	srcOnce sync.Once
	srcErr  error
	header  mkv.Header
	plans   []producer.FragmentPlan // 2 s fragments as ffmpeg encoded them

	monthOnce    sync.Once
	monthErr     error
	month        *stream.Stream
	monthStartMs int64 // producer time of the first fragment
	monthBuild   time.Duration
	monthCluster int64 // stored bytes of the one cluster every row points at

	hourOnce    sync.Once
	hourErr     error
	hour        *stream.Stream
	hourFrags   []stream.Fragment
	hourStartMs int64
	hourBytes   int64
	hourStore   time.Duration
}

func newBenchEnv(b *testing.B) *benchEnv {
	dir := b.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	e := &benchEnv{dir: dir, ctx: ctx, stop: stop, ran: make(chan struct{}), now: time.Now()}
	var err error
	if e.idx, err = sqlindex.Open(ctx, filepath.Join(dir, "index.db")); err != nil {
		b.Fatal(err)
	}
	if e.media, err = localfs.Open(filepath.Join(dir, "media")); err != nil {
		b.Fatal(err)
	}
	if e.arc, err = archive.Open(ctx, e.idx, e.media, archive.Options{}); err != nil {
		b.Fatal(err)
	}
	go func() { e.arc.Run(ctx); close(e.ran) }()
	e.srv = &Server{Archive: e.arc, Keys: NewKeyring([]byte("0123456789abcdef0123456789abcdef")),
		Log: slog.New(slog.DiscardHandler)}
	b.Cleanup(func() {
		e.stop()
		<-e.ran
		e.idx.Close()
		e.media.Close()
	})
	return e
}

// source encodes 20 s of 1280x720 H.264 at 2 Mbit/s with a key frame every
// 2 s, reads it as a producer would (internal/producer.OpenFile) and cuts
// it into fragments at the key frames.
func (e *benchEnv) source(b *testing.B) {
	e.srcOnce.Do(func() {
		if _, err := exec.LookPath("ffmpeg"); err != nil {
			e.srcErr = errSkip
			return
		}
		out := filepath.Join(e.dir, "src.mkv")
		cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y",
			"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", "20",
			"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
			"-b:v", "2M", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			e.srcErr = fmt.Errorf("ffmpeg: %v: %s", err, msg)
			return
		}
		m, err := producer.OpenFile(e.ctx, out)
		if err != nil {
			e.srcErr = err
			return
		}
		e.header = m.Header
		e.plans = m.Fragments(0)
		if len(e.plans) != 10 {
			e.srcErr = fmt.Errorf("ffmpeg made %d fragments, want 10", len(e.plans))
		}
	})
	if errors.Is(e.srcErr, errSkip) {
		b.Skip("ffmpeg is not in PATH")
	}
	if e.srcErr != nil {
		b.Fatal(e.srcErr)
	}
}

var errSkip = errors.New("skip")

// cluster is source fragment i as ingest stores it: one Cluster whose
// Timecode is the fragment's producer time (1 ms timecode scale).
func (e *benchEnv) cluster(i int, producerMs int64) []byte {
	p := &e.plans[i]
	blocks := make([]mkv.Block, len(p.Frames))
	for k, f := range p.Frames {
		blocks[k] = mkv.NewSimpleBlock(f.Track, int16(f.PTSms-p.StartMs), f.Keyframe, f.Data)
	}
	return mkv.AppendCluster(nil, uint64(producerMs), blocks)
}

func (e *benchEnv) createStream(name string, created time.Time) (*stream.Stream, int64, error) {
	st := &stream.Stream{Account: "123456789012", Region: "us-east-1", Name: name, MediaType: "video/h264",
		Version: "1", Status: stream.StatusActive, Created: created, RetentionHours: 24 * 365}
	if err := e.idx.CreateStream(e.ctx, st, nil); err != nil {
		return nil, 0, err
	}
	hid, err := e.idx.PutHeader(e.ctx, st.ID, mkv.EncodeHeaderTracks(e.header))
	return st, hid, err
}

// monthStream builds the 30-day stream: one real cluster stored with
// Persist, then 1,295,999 more rows pointing at it, committed directly.
func (e *benchEnv) monthStream(b *testing.B) {
	e.source(b)
	e.monthOnce.Do(func() {
		start := e.now.Add(-benchMonthDays*24*time.Hour - time.Hour).Truncate(time.Hour).UnixMilli()
		st, hid, err := e.createStream("month", time.UnixMilli(start-3_600_000))
		if err != nil {
			e.monthErr = err
			return
		}
		t0 := time.Now()
		n, err := e.arc.NextFragmentNumber(e.ctx)
		if err != nil {
			e.monthErr = err
			return
		}
		first := stream.Fragment{Number: n, StreamID: st.ID, ProducerMs: start, ServerMs: start + benchArrivalMs,
			DurationMs: benchFragMs, HeaderID: hid}
		if err := e.arc.Persist(e.ctx, &first, e.cluster(0, start)); err != nil {
			e.monthErr = err
			return
		}
		segs, err := e.idx.Segments(e.ctx)
		if err != nil {
			e.monthErr = err
			return
		}
		var end int64
		for _, s := range segs {
			if s.ID == first.Location.SegmentID {
				end = s.CommittedBytes
			}
		}
		num, err := e.idx.ReserveFragmentNumbers(e.ctx, benchMonthFrags)
		if err != nil {
			e.monthErr = err
			return
		}
		const batch = 86_400_000 / benchFragMs // one day per transaction
		rows := make([]stream.Fragment, 0, batch)
		for i := 1; i < benchMonthFrags; {
			rows = rows[:0]
			for ; i < benchMonthFrags && len(rows) < batch; i++ {
				f := first
				f.Number = num + stream.FragmentNumber(i)
				f.ProducerMs = start + int64(i)*benchFragMs
				f.ServerMs = f.ProducerMs + benchArrivalMs
				rows = append(rows, f)
			}
			if err := e.idx.CommitFragments(e.ctx, first.Location.SegmentID, end, rows); err != nil {
				e.monthErr = err
				return
			}
		}
		e.month, e.monthStartMs, e.monthBuild, e.monthCluster = st, start, time.Since(t0), first.SizeBytes
	})
	if e.monthErr != nil {
		b.Fatal(e.monthErr)
	}
}

// hourStream stores one hour of real 2 s fragments through Persist, in
// groups, as concurrent PutMedia sessions would hand them over.
func (e *benchEnv) hourStream(b *testing.B) {
	e.source(b)
	e.hourOnce.Do(func() {
		start := e.now.Add(-2 * time.Hour).Truncate(time.Second).UnixMilli()
		st, hid, err := e.createStream("hour", time.UnixMilli(start-3_600_000))
		if err != nil {
			e.hourErr = err
			return
		}
		t0 := time.Now()
		frags := make([]stream.Fragment, benchHourFrags)
		const group = 32
		for g := 0; g < len(frags); g += group {
			var dones []<-chan error
			for i := g; i < min(g+group, len(frags)); i++ {
				n, err := e.arc.NextFragmentNumber(e.ctx)
				if err != nil {
					e.hourErr = err
					return
				}
				pms := start + int64(i)*benchFragMs
				frags[i] = stream.Fragment{Number: n, StreamID: st.ID, ProducerMs: pms, ServerMs: pms + benchArrivalMs,
					DurationMs: e.plans[i%len(e.plans)].DurationMs, HeaderID: hid}
				data := e.cluster(i%len(e.plans), pms)
				// The sample table ingest stores with every fragment.
				ts, err := e.srv.tracksOf(e.ctx, hid)
				if err != nil {
					e.hourErr = err
					return
				}
				if frags[i].SampleTable, err = fmp4.SampleTable(ts.header, ts.tracks, data); err != nil {
					e.hourErr = err
					return
				}
				done, err := e.arc.PersistAsync(e.ctx, &frags[i], data)
				if err != nil {
					e.hourErr = err
					return
				}
				dones = append(dones, done)
			}
			for _, d := range dones {
				if err := <-d; err != nil {
					e.hourErr = err
					return
				}
			}
		}
		e.hourStore = time.Since(t0)
		for _, f := range frags {
			e.hourBytes += f.SizeBytes
		}
		e.hour, e.hourFrags, e.hourStartMs = st, frags, start
	})
	if e.hourErr != nil {
		b.Fatal(e.hourErr)
	}
}

// session asks for an HLS ON_DEMAND session as GetHLSStreamingSessionURL
// would, and returns it with its token.
func (e *benchEnv) session(b *testing.B, st *stream.Stream, startMs, endMs int64, maxFrags int64) (*Session, string) {
	expires := int64(maxExpires)
	s, err := e.srv.NewSession(e.ctx, Request{Stream: st, Kind: HLS, Mode: OnDemand, Selector: archive.ServerTimestamp,
		StartMs: &startMs, EndMs: &endMs, Container: FragmentedMP4, ExpiresSec: &expires,
		MaxFragments: &maxFrags})
	if err != nil {
		b.Fatal(err)
	}
	return s, e.srv.Keys.Token(s)
}

// get answers one GET through ServeHTTP into w.
func (e *benchEnv) get(b *testing.B, w *benchWriter, url string) {
	e.srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, url, nil))
	if w.status != http.StatusOK {
		b.Fatalf("GET %s: %d %s", url[:min(len(url), 120)], w.status, w.h.Get("x-amzn-ErrorType"))
	}
}

// benchWriter is an http.ResponseWriter that keeps nothing but counts, as a
// socket would: no extra copy of the body. It notes when the header and the
// first body byte arrive, and with failAfter set refuses every Write after
// the first (the client hung up), which ends a GetClip early.
type benchWriter struct {
	h         http.Header
	status    int
	n         int64
	headerAt  time.Time
	firstAt   time.Time
	failAfter bool
}

var errHungUp = errors.New("client hung up")

func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n, w.headerAt, w.firstAt = 0, 0, time.Time{}, time.Time{}
}

func (w *benchWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}

func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status, w.headerAt = code, time.Now()
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.firstAt.IsZero() {
		w.firstAt = time.Now()
	} else if w.failAfter {
		return 0, errHungUp
	}
	w.n += int64(len(p))
	return len(p), nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	return sorted[max(0, int(math.Ceil(q*float64(len(sorted))))-1)]
}

func BenchmarkPlayback(b *testing.B) {
	e := newBenchEnv(b)
	for _, maxFrags := range []int64{1000, maxPlaylistSize} {
		b.Run(fmt.Sprintf("MediaPlaylist24h/max=%d", maxFrags), func(b *testing.B) { benchMediaPlaylist(b, e, maxFrags) })
	}
	b.Run("FragmentServe", func(b *testing.B) { benchFragmentServe(b, e) })
	b.Run("ClipTTFB1h", func(b *testing.B) { benchClipTTFB(b, e) })
	b.Run("ClipFull1h", func(b *testing.B) { benchClipFull(b, e) })
}

// benchMediaPlaylist: GET getHLSMediaPlaylist.m3u8 of an ON_DEMAND session
// over a random 24 h window of the 30-day stream. One op is one request.
// p50/p99 cover every timed request plus untimed ones up to
// benchPlaylistMin (or 10 s), so -benchtime 1x still gives percentiles.
func benchMediaPlaylist(b *testing.B, e *benchEnv, maxFrags int64) {
	e.monthStream(b)
	rng := rand.New(rand.NewPCG(1, uint64(maxFrags)))
	day := int64(86_400_000)
	type req struct {
		s   *Session
		tok string
		url string
	}
	reqs := make([]req, 128)
	for i := range reqs {
		start := e.monthStartMs + rng.Int64N((benchMonthDays-1)*day)
		s, tok := e.session(b, e.month, start, start+day, maxFrags)
		reqs[i] = req{s, tok, HLSPrefix + "getHLSMediaPlaylist.m3u8?SessionToken=" + tok + "&TrackNumber=1"}
	}
	w := &benchWriter{}
	// Once, untimed: the playlist lists maxFrags fragments and one of them
	// serves.
	e.get(b, w, reqs[0].url)
	listed := w.n
	if got := strings.Count(mediaPlaylistOf(b, e, reqs[0].s, reqs[0].tok), "#EXTINF"); got != int(maxFrags) {
		b.Fatalf("playlist lists %d fragments, want %d", got, maxFrags)
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		r := &reqs[i%len(reqs)]
		i++
		w.reset()
		t0 := time.Now()
		e.get(b, w, r.url)
		lat = append(lat, time.Since(t0))
	}
	for deadline := time.Now().Add(10 * time.Second); len(lat) < benchPlaylistMin && time.Now().Before(deadline); i++ {
		r := &reqs[i%len(reqs)]
		w.reset()
		t0 := time.Now()
		e.get(b, w, r.url)
		lat = append(lat, time.Since(t0))
	}
	// Where the time goes: the window (SQL) and the text, apart.
	var sqlT, textT time.Duration
	const split = 50
	for k := range split {
		r := &reqs[k%len(reqs)]
		t0 := time.Now()
		win, err := e.srv.window(e.ctx, r.s)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		_ = mediaPlaylist(r.tok, r.s, win, 1, nil)
		textT += time.Since(t1)
		sqlT += t1.Sub(t0)
	}
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
	b.ReportMetric(float64(len(lat)), "samples")
	b.ReportMetric(ms(sqlT/split), "window-ms")
	b.ReportMetric(ms(textT/split), "render-ms")
	b.ReportMetric(float64(listed)/1e3, "playlist-kB")
	b.ReportMetric(e.monthBuild.Seconds(), "index-build-s")
	if _, size, err := bench.DiskUsage(e.dir); err == nil {
		b.ReportMetric(float64(size)/1e6, "index-MB")
	}
}

func mediaPlaylistOf(b *testing.B, e *benchEnv, s *Session, tok string) string {
	win, err := e.srv.window(e.ctx, s)
	if err != nil {
		b.Fatal(err)
	}
	return mediaPlaylist(tok, s, win, 1, nil)
}

// benchFragmentServe: GET getMP4MediaFragment.mp4 of the hour's real
// fragments against Archive.Read of stored fragments alone, in the same
// loop. One op is one of each; the two run on different fragments (half
// an hour apart) and swap order every op, so neither reads the other's
// bytes from the CPU cache. Both MB/s count stored (Cluster) bytes; the
// metrics cover at least 200 pairs (about 100 MB each way). The *-us
// metrics split one fragment's serving into its steps (see below).
func benchFragmentServe(b *testing.B, e *benchEnv) {
	e.hourStream(b)
	_, tok := e.session(b, e.hour, e.hourStartMs, e.hourStartMs+3_600_000+benchFragMs, 1000)
	urls := make([]string, len(e.hourFrags))
	for i, f := range e.hourFrags {
		urls[i] = HLSPrefix + "getMP4MediaFragment.mp4?FragmentNumber=" + f.Number.String() +
			"&SessionToken=" + tok + "&TrackNumber=1"
	}
	w := &benchWriter{}
	var serveT, readT time.Duration
	var serveB, readB, outB int64
	n := 0
	pair := func() {
		si, ri := n%len(urls), (n+len(urls)/2)%len(urls)
		serve := func() {
			w.reset()
			t0 := time.Now()
			e.get(b, w, urls[si])
			serveT += time.Since(t0)
			serveB += e.hourFrags[si].SizeBytes
			outB += w.n
		}
		read := func() {
			t0 := time.Now()
			data, err := e.arc.Read(e.ctx, &e.hourFrags[ri])
			readT += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			readB += int64(len(data))
		}
		if n%2 == 0 {
			serve()
			read()
		} else {
			read()
			serve()
		}
		n++
	}
	for b.Loop() {
		pair()
	}
	for n < 200 {
		pair()
	}
	// Where a fragment's time goes, each step alone over 200 fragments:
	// the token and the two index lookups, the read, parsing the cluster
	// into samples, and packaging the media segment.
	var lookT, rdT, parseT, pkgT time.Duration
	const split = 200
	for k := range split {
		f0 := &e.hourFrags[(k*7)%len(e.hourFrags)]
		t0 := time.Now()
		s, err := e.srv.Keys.Parse(tok, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.idx.StreamByID(e.ctx, s.StreamID); err != nil {
			b.Fatal(err)
		}
		f, err := e.idx.Fragment(e.ctx, s.StreamID, f0.Number)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		data, err := e.arc.Read(e.ctx, f)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		ts, err := e.srv.tracksOf(e.ctx, f.HeaderID)
		if err != nil {
			b.Fatal(err)
		}
		samples, err := fmp4.FragmentSamples(ts.header, ts.tracks, data, 0)
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := fmp4.AppendMediaSegment(nil, uint32(f.Number), ts.tracks[0], samples[ts.tracks[0].Number]); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		lookT, rdT, parseT, pkgT = lookT+t1.Sub(t0), rdT+t2.Sub(t1), parseT+t3.Sub(t2), pkgT+t4.Sub(t3)
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 / split }
	b.ReportMetric(us(lookT), "lookup-us")
	b.ReportMetric(us(rdT), "read-us")
	b.ReportMetric(us(parseT), "parse-us")
	b.ReportMetric(us(pkgT), "package-us")

	serveMBs := float64(serveB) / 1e6 / serveT.Seconds()
	readMBs := float64(readB) / 1e6 / readT.Seconds()
	b.ReportMetric(serveMBs, "serve-MB/s")
	b.ReportMetric(readMBs, "read-MB/s")
	b.ReportMetric(100*serveMBs/readMBs, "serve/read-%")
	b.ReportMetric(float64(outB)/float64(serveB), "out/stored")
}

func (e *benchEnv) hourClip() ClipRequest {
	return ClipRequest{Stream: e.hour, Selector: archive.ServerTimestamp,
		StartMs: e.hourStartMs, EndMs: e.hourStartMs + 3_600_000 - 1}
}

// benchClipTTFB: GetClip of the whole hour, from the call until the first
// body byte reaches the ResponseWriter; the writer then hangs up, so one op
// is the time to first byte. After the loop, the planning is split into
// its parts by doing each alone once: the index query, reading every
// fragment, parsing each one's sample table, and laying the MP4 out.
func benchClipTTFB(b *testing.B, e *benchEnv) {
	e.hourStream(b)
	req := e.hourClip()
	w := &benchWriter{failAfter: true}
	var ttfb, worst time.Duration
	n := 0
	for b.Loop() {
		w.reset()
		t0 := time.Now()
		if err := e.srv.WriteClip(e.ctx, w, req); err != nil {
			b.Fatal(err)
		}
		if w.firstAt.IsZero() {
			b.Fatal("no body byte")
		}
		d := w.firstAt.Sub(t0)
		ttfb += d
		worst = max(worst, d)
		n++
	}
	b.ReportMetric(ms(ttfb)/float64(n), "ttfb-ms")
	b.ReportMetric(ms(worst), "ttfb-max-ms")

	// The split, each part alone.
	t0 := time.Now()
	var frags []stream.Fragment
	q := archive.FragmentQuery{StreamID: req.Stream.ID, Kind: req.Selector, StartMs: req.StartMs, EndMs: req.EndMs, Limit: 1000, SampleTables: true}
	for {
		page, err := e.idx.Fragments(e.ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		frags = append(frags, page...)
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.AfterNumber, q.AfterMs = last.Number, last.ServerMs
	}
	queryT := time.Since(t0)
	if len(frags) != benchHourFrags {
		b.Fatalf("clip range holds %d fragments, want %d", len(frags), benchHourFrags)
	}
	ts, err := e.srv.tracksOf(e.ctx, frags[0].HeaderID)
	if err != nil {
		b.Fatal(err)
	}
	var tableB int64
	t0 = time.Now()
	index := make([]fmp4.ClipFragment, len(frags))
	for i := range frags {
		tableB += int64(len(frags[i].SampleTable))
		if index[i], err = fmp4.ParseClipFragment(frags[i].SampleTable); err != nil {
			b.Fatal(err)
		}
	}
	decodeT := time.Since(t0)
	t0 = time.Now()
	layout, err := fmp4.PlanClip(ts.tracks, index)
	if err != nil {
		b.Fatal(err)
	}
	layoutT := time.Since(t0)
	// What planning cost before the tables were stored (and still costs
	// for fragments ingested without one): reading and parsing every
	// fragment.
	t0 = time.Now()
	for i := range frags {
		data, err := e.arc.Read(e.ctx, &frags[i])
		if err != nil {
			b.Fatal(err)
		}
		if _, err = fmp4.FragmentIndex(ts.header, ts.tracks, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(ms(time.Since(t0)), "plan-from-media-ms")
	b.ReportMetric(ms(queryT), "query-ms")
	b.ReportMetric(ms(decodeT), "decode-ms")
	b.ReportMetric(ms(layoutT), "layout-ms")
	b.ReportMetric(float64(tableB)/float64(len(frags)), "table-B/frag")
	b.ReportMetric(100*float64(tableB)/float64(e.hourBytes), "table-%-of-media")
	b.ReportMetric(float64(len(layout.Header()))/1e3, "moov-kB")
	b.ReportMetric(float64(e.hourBytes)/1e6, "stored-MB")
}

// benchClipFull: the whole one-hour GetClip streamed to a counting writer,
// against reading the same stored fragments with Archive.Read in the same
// op. x-read is how many times longer the clip takes than the reads. The
// *-us metrics split the body's cost per fragment (see below).
func benchClipFull(b *testing.B, e *benchEnv) {
	e.hourStream(b)
	req := e.hourClip()
	w := &benchWriter{}
	var clipT, readT time.Duration
	var clipB int64
	for b.Loop() {
		w.reset()
		t0 := time.Now()
		if err := e.srv.WriteClip(e.ctx, w, req); err != nil {
			b.Fatal(err)
		}
		clipT += time.Since(t0)
		if got := w.h.Get("Content-Length"); got != fmt.Sprint(w.n) {
			b.Fatalf("clip of %d bytes, Content-Length %s", w.n, got)
		}
		clipB += w.n
		t1 := time.Now()
		for i := range e.hourFrags {
			if _, err := e.arc.Read(e.ctx, &e.hourFrags[i]); err != nil {
				b.Fatal(err)
			}
		}
		readT += time.Since(t1)
	}
	// The body's cost per fragment, each step alone over 200 fragments:
	// read, parse, and the mdat payload as WriteClip builds it (appended to
	// a nil slice) against the same payload appended to a buffer of the
	// planned size, reused.
	plan, err := e.srv.planClip(e.ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	var rdT, parseT, payT, preT time.Duration
	var buf []byte
	const split = 200
	for k := range split {
		i := (k * 7) % len(plan.frags)
		t0 := time.Now()
		data, err := e.arc.Read(e.ctx, &plan.frags[i])
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		samples, err := fmp4.FragmentSamples(plan.ts.header, plan.ts.tracks, data, 0)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := plan.layout.AppendFragmentPayload(nil, i, samples); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		_, size := plan.layout.FragmentRange(i)
		if buf, err = plan.layout.AppendFragmentPayload(slices.Grow(buf[:0], int(size)), i, samples); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		rdT, parseT, payT, preT = rdT+t1.Sub(t0), parseT+t2.Sub(t1), payT+t3.Sub(t2), preT+t4.Sub(t3)
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 / split }
	b.ReportMetric(us(rdT), "read-us")
	b.ReportMetric(us(parseT), "parse-us")
	b.ReportMetric(us(payT), "payload-us")
	b.ReportMetric(us(preT), "payload-sized-us")

	n := float64(b.N)
	b.ReportMetric(ms(clipT)/n, "clip-ms")
	b.ReportMetric(float64(clipB)/1e6/clipT.Seconds(), "clip-MB/s")
	b.ReportMetric(float64(e.hourBytes)*n/1e6/readT.Seconds(), "read-MB/s")
	b.ReportMetric(float64(clipT)/float64(readT), "x-read")
	b.ReportMetric(e.hourStore.Seconds(), "store-s")
}
