package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// serverTimes maps fragment numbers to their server start (ms) as
// ListFragments reports them.
func serverTimes(t *testing.T, am *kinesisvideoarchivedmedia.Client, name string) map[string]int64 {
	t.Helper()
	out, err := am.ListFragments(ctxT(t), &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, f := range out.Fragments {
		m[aws.ToString(f.FragmentNumber)] = f.ServerTimestamp.UnixMilli()
	}
	return m
}

// mixedFragments is a run of fragments, some tagged for notification with
// custom tags, some not, from producer time base.
func mixedFragments(base uint64, n int) []taggedFragment {
	var fs []taggedFragment
	for i := 0; i < n; i++ {
		f := taggedFragment{tc: base + uint64(i)*1000}
		if i%2 == 0 {
			f.notify = true
			f.payload = map[string]string{"motion": fmt.Sprintf("zone-%d", i), "camera": "lobby"}
		}
		fs = append(fs, f)
	}
	return fs
}

// A producer tags every other fragment; the webhook receives one signed
// message per tagged fragment, with exactly the KVS fields, and nothing
// for the others. Fragments tagged for image generation get an outbox row
// of their own kind, listed as events, and no notification.
func TestNotifyWebhook(t *testing.T) {
	s := startServer(t, withNotify(notifyCfg(10, 50*time.Millisecond, time.Second)))
	hook := newHookReceiver(t)
	arn := createStream(t, s, "cam-hook", 1)
	setNotification(t, s.kv(), "cam-hook", hook.url("/kvs/events"))
	d, err := s.kv().DescribeNotificationConfiguration(ctxT(t), &kinesisvideo.DescribeNotificationConfigurationInput{StreamARN: aws.String(arn)})
	if err != nil || d.NotificationConfiguration == nil || aws.ToString(d.NotificationConfiguration.DestinationConfig.Uri) != hook.url("/kvs/events") ||
		d.NotificationConfiguration.Status != "ENABLED" {
		t.Fatalf("DescribeNotificationConfiguration: %+v %v", d, err)
	}

	frags := mixedFragments(1_700_000_000_000, 7)
	body := tagBody(true, frags)
	// A fragment with a plain custom tag and one with only an image trigger.
	body.cluster(1_700_000_010_000, 3, 200).tags("plain", "x").eofr()
	body.cluster(1_700_000_011_000, 3, 200).event(stream.TagImageGeneration, "k", "v").eofr()
	res := putMedia(t, s, absolute("cam-hook"), body.reader())
	if res.count("PERSISTED") != 9 {
		t.Fatalf("acks %+v", res.acks)
	}
	got := waitFor(t, "webhook", 4, 10*time.Second, hook.delivered)
	time.Sleep(300 * time.Millisecond) // anything extra would arrive now
	checkMessages(t, hook.delivered(), arn, append(frags, taggedFragment{tc: 1_700_000_010_000}, taggedFragment{tc: 1_700_000_011_000}),
		persistedNumbers(t, res), serverTimes(t, s.archived(), "cam-hook"))
	for i := 1; i < len(got); i++ {
		if got[i].msg.FragmentNumber <= got[i-1].msg.FragmentNumber {
			t.Fatalf("messages out of fragment order: %s after %s", got[i].msg.FragmentNumber, got[i-1].msg.FragmentNumber)
		}
	}

	// The events timeline: four delivered notifications with their message
	// ids, and the image-generation row, skipped (no configuration).
	evs := waitEvents(t, s.URL, map[string]any{"StreamName": "cam-hook"}, 5*time.Second, func(evs []apiEvent) bool {
		return countStatus(evs, "DELIVERED") == 4 && countStatus(evs, "SKIPPED") == 1
	})
	ids := map[string]bool{}
	for _, r := range got {
		ids[r.id] = true
	}
	notes, images := 0, 0
	for _, e := range evs {
		switch e.Kind {
		case "NOTIFICATION":
			notes++
			if e.Status != "DELIVERED" || e.Attempts != 1 || !ids[e.MessageId] || e.Destination != hook.url("/kvs/events") {
				t.Errorf("notification event %+v", e)
			}
		case "IMAGE_GENERATION":
			images++
			// Taken by image generation, which has nothing to do here.
			if e.Status != "SKIPPED" || e.LastError != "the stream has no image generation configuration" || e.Tags["k"] != "v" {
				t.Errorf("image event %+v", e)
			}
		}
	}
	if notes != 4 || images != 1 {
		t.Fatalf("%d notification and %d image events, want 4 and 1: %+v", notes, images, evs)
	}
	// The AWS CLI reads the configuration back too.
	out, errOut, err := s.awsCLI(t, "kinesisvideo", "describe-notification-configuration", "--stream-name", "cam-hook")
	if err != nil || !strings.Contains(out, `"Uri": "`+hook.url("/kvs/events")+`"`) {
		t.Fatalf("aws describe-notification-configuration: %v %s %s", err, out, errOut)
	}
	t.Logf("4 tagged fragments of 9 gave 4 signed webhook messages; events %d", len(evs))
}

// `kinema put --notify` (the CLI producer, from an ffmpeg-made file) tags
// fragments; the machine's Mosquitto delivers each message at QoS 1 to a
// subscriber, through an SNS topic ARN mapped in the configuration.
func TestNotifyMQTTWithKinemaPut(t *testing.T) {
	topic := randomName("kinema-e2e/") + "/events"
	nc := notifyCfg(10, 50*time.Millisecond, time.Second)
	const topicARN = "arn:aws:sns:us-west-2:123456789012:camera-events"
	nc.Topics[topicARN] = "mqtt://127.0.0.1:1883/" + topic
	s := startServer(t, withNotify(nc))
	sub := subscribeMQTT(t, "127.0.0.1:1883", topic)
	arn := createStream(t, s, "cam-mqtt", 1)
	setNotification(t, s.kv(), "cam-mqtt", topicARN) // a configuration written for KVS, unchanged

	src := makeMedia(t, "in.mp4", args(srcVideo, []string{"-t", "4"}, encX264)...)
	cmd := exec.Command(kinemaBinary(t), "put", "--endpoint", s.URL, "--stream", "cam-mqtt", "--fast", "--quiet",
		"--tag", "site=lobby", "--notify", "--event-every", "2", src)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+testKey, "AWS_SECRET_ACCESS_KEY="+testSecret, "AWS_REGION="+testRegion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kinema put: %v\n%s", err, out)
	}
	got := waitFor(t, "MQTT", 2, 10*time.Second, sub.delivered)
	time.Sleep(300 * time.Millisecond)
	got = sub.delivered()
	times := serverTimes(t, s.archived(), "cam-mqtt")
	if len(got) != 2 || len(times) != 4 {
		t.Fatalf("%d messages for %d fragments; want 2 (every 2nd fragment tagged)", len(got), len(times))
	}
	for _, r := range got {
		m := r.msg
		if m.StreamArn != arn || m.NotificationType != "PERSISTED" || fmt.Sprint(m.NotificationPayload) != "map[site:lobby]" ||
			times[m.FragmentNumber] != m.FragmentStartServerTimestamp || len(r.fields) != 6 || r.id == "" {
			t.Errorf("MQTT message %+v (id %q)", m, r.id)
		}
	}
	if got[0].msg.FragmentNumber >= got[1].msg.FragmentNumber {
		t.Fatal("MQTT messages out of order")
	}
	evs := waitEvents(t, s.URL, map[string]any{"StreamName": "cam-mqtt", "Kind": "NOTIFICATION"}, 5*time.Second,
		func(evs []apiEvent) bool { return countStatus(evs, "DELIVERED") == 2 })
	if len(evs) != 2 || evs[0].Destination != topicARN {
		t.Fatalf("events %+v", evs)
	}
}

// NATS on this machine: a subject captured by a JetStream stream gets the
// messages through JetStream (stored, de-duplicated by Nats-Msg-Id); a
// subject no stream captures gets core NATS messages.
func TestNotifyNATS(t *testing.T) {
	s := startServer(t, withNotify(notifyCfg(10, 50*time.Millisecond, time.Second)))
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		t.Fatalf("NATS on 127.0.0.1:4222 (scripts/setup.sh starts it): %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	base := randomName("kinema-e2e-")
	ctx := ctxT(t)
	jsStream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: strings.ReplaceAll(base, "-", "_"), Subjects: []string{base + ".js.>"},
		Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatalf("JetStream on 127.0.0.1:4222: %v", err)
	}
	t.Cleanup(func() { js.DeleteStream(context.Background(), jsStream.CachedInfo().Config.Name) })
	coreMsgs := make(chan *nats.Msg, 100)
	coreSub, err := nc.ChanSubscribe(base+".core.events", coreMsgs)
	if err != nil {
		t.Fatal(err)
	}
	defer coreSub.Unsubscribe()
	nc.Flush()

	arnJS := createStream(t, s, "cam-js", 1)
	arnCore := createStream(t, s, "cam-core", 1)
	setNotification(t, s.kv(), "cam-js", "nats://127.0.0.1:4222/"+base+".js.events")
	setNotification(t, s.kv(), "cam-core", "nats://127.0.0.1/"+base+".core.events") // default port
	frags := mixedFragments(1_700_000_000_000, 8)
	resJS := putMedia(t, s, absolute("cam-js"), tagBody(true, frags).reader())
	resCore := putMedia(t, s, absolute("cam-core"), tagBody(true, frags).reader())

	waitEvents(t, s.URL, map[string]any{"Kind": "NOTIFICATION"}, 10*time.Second, func(evs []apiEvent) bool { return countStatus(evs, "DELIVERED") == 8 })
	cons, err := jsStream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(100)
	if err != nil {
		t.Fatal(err)
	}
	var stored []received
	for m := range batch.Messages() {
		msg, f := decodeMessage(t, m.Data())
		stored = append(stored, received{id: m.Headers().Get("Nats-Msg-Id"), msg: msg, fields: f})
	}
	if len(stored) != 4 {
		t.Fatalf("JetStream stored %d messages, want 4", len(stored))
	}
	checkMessages(t, stored, arnJS, frags, persistedNumbers(t, resJS), serverTimes(t, s.archived(), "cam-js"))
	evs := listEventsAPI(t, s.URL, map[string]any{"StreamName": "cam-js"})
	for i, e := range evs {
		if stored[i].id != e.MessageId || stored[i].msg.FragmentNumber != e.FragmentNumber {
			t.Fatalf("JetStream message %d has Nats-Msg-Id %q for %s; event %+v", i, stored[i].id, stored[i].msg.FragmentNumber, e)
		}
	}
	var core []received
	for len(core) < 4 {
		select {
		case m := <-coreMsgs:
			msg, f := decodeMessage(t, m.Data)
			core = append(core, received{id: m.Header.Get("Kinema-Message-Id"), msg: msg, fields: f})
		case <-time.After(5 * time.Second):
			t.Fatalf("core NATS subscriber got %d of 4", len(core))
		}
	}
	checkMessages(t, core, arnCore, frags, persistedNumbers(t, resCore), nil)
}

// The receiver is down while two cameras send tagged fragments; when it
// comes back every message arrives, each stream's in fragment order.
func TestNotifyReceiverDownThenBack(t *testing.T) {
	s := startServer(t, withNotify(notifyCfg(100, 50*time.Millisecond, 400*time.Millisecond)))
	hook := newHookReceiver(t)
	hook.down()
	names := []string{"cam-a", "cam-b"}
	arns := map[string]string{}
	for _, n := range names {
		arns[n] = createStream(t, s, n, 1)
		setNotification(t, s.kv(), n, hook.url("/hook"))
	}
	frags := []taggedFragment{}
	for i := 0; i < 5; i++ {
		frags = append(frags, taggedFragment{tc: 1_700_000_000_000 + uint64(i)*1000, notify: true, payload: map[string]string{"seq": fmt.Sprint(i)}})
	}
	results := map[string]putResult{}
	for _, n := range names {
		results[n] = putMedia(t, s, absolute(n), tagBody(true, frags).reader())
	}
	// Attempts fail and are retried; the events say so.
	waitEvents(t, s.URL, map[string]any{"Kind": "NOTIFICATION"}, 10*time.Second, func(evs []apiEvent) bool {
		return len(evs) == 10 && evs[0].Attempts >= 2 && strings.Contains(evs[0].LastError, "connect")
	})
	hook.up()
	got := waitFor(t, "webhook after recovery", 10, 20*time.Second, hook.delivered)
	for _, n := range names {
		checkMessages(t, got, arns[n], frags, persistedNumbers(t, results[n]), nil)
		last := -1
		for _, r := range got {
			if r.msg.StreamArn != arns[n] {
				continue
			}
			var seq int
			fmt.Sscan(r.msg.NotificationPayload["seq"], &seq)
			if seq != last+1 {
				t.Fatalf("stream %s: message %d arrived after %d", n, seq, last)
			}
			last = seq
		}
	}
}

// A receiver that always fails: the message is DEAD after MaxAttempts,
// listed as a dead letter by the API and `kinema events dead-letters`;
// once the receiver is fixed, `kinema events redrive` delivers it, with the
// same message id every attempt had.
func TestNotifyDeadLetterAndRedrive(t *testing.T) {
	s := startServer(t, withNotify(notifyCfg(3, 20*time.Millisecond, 50*time.Millisecond)))
	hook := newHookReceiver(t)
	hook.status.Store(500)
	createStream(t, s, "cam-dead", 1)
	setNotification(t, s.kv(), "cam-dead", hook.url("/broken"))
	frags := []taggedFragment{{tc: 1_700_000_000_000, notify: true}, {tc: 1_700_000_001_000, notify: true, payload: map[string]string{"k": "v"}}}
	putMedia(t, s, absolute("cam-dead"), tagBody(true, frags).reader())
	dead := waitEvents(t, s.URL, map[string]any{"Status": "DEAD"}, 10*time.Second, func(evs []apiEvent) bool { return len(evs) == 2 })
	for _, e := range dead {
		if e.Attempts != 3 || e.LastError != "webhook answered HTTP 500" || e.StreamName != "cam-dead" {
			t.Fatalf("dead letter %+v", e)
		}
	}
	if n := len(hook.requests()); n != 6 {
		t.Fatalf("%d attempts reached the receiver, want 3 per message", n)
	}
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kinemaBinary(t), append([]string{"events"}, args...)...)
		cmd.Env = append(os.Environ(), "KINEMA_ENDPOINT="+s.URL, "AWS_ACCESS_KEY_ID="+testKey, "AWS_SECRET_ACCESS_KEY="+testSecret, "AWS_REGION="+testRegion)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kinema events %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := cli("dead-letters", "--stream", "cam-dead")
	if !strings.Contains(out, "2 events") || strings.Count(out, "DEAD") != 2 || !strings.Contains(out, "webhook answered HTTP 500") {
		t.Fatalf("kinema events dead-letters:\n%s", out)
	}
	hook.status.Store(0)
	if out := cli("redrive", "--stream", "cam-dead"); !strings.Contains(out, "redriven 2") {
		t.Fatalf("kinema events redrive: %s", out)
	}
	got := waitFor(t, "webhook after redrive", 2, 10*time.Second, hook.delivered)
	failedIDs := map[string]int{}
	for _, r := range hook.requests() {
		failedIDs[r.id]++
	}
	for _, r := range got {
		if failedIDs[r.id] != 4 {
			t.Fatalf("message id %s was seen %d times; want the same id on 3 failed attempts and the redriven one", r.id, failedIDs[r.id])
		}
	}
	// Outcomes are recorded in batches, just after the receiver answers.
	waitEvents(t, s.URL, map[string]any{"StreamName": "cam-dead"}, 5*time.Second, func(evs []apiEvent) bool { return countStatus(evs, "DELIVERED") == 2 })
	if out := cli("list", "--stream", "cam-dead"); strings.Count(out, "DELIVERED") != 2 {
		t.Fatalf("kinema events list after redrive:\n%s", out)
	}
	if out := cli("dead-letters"); !strings.Contains(out, "0 events") {
		t.Fatalf("dead letters left:\n%s", out)
	}
}

// kill -9 between PERSISTED and delivery: the receiver is down, the
// tagged fragments are PERSISTED, Kinema dies; after a restart (receiver
// back) every message is delivered.
func TestNotifyKill9BeforeDelivery(t *testing.T) {
	hook := newHookReceiver(t)
	hook.down()
	cfgFile := writeNotifyConfig(t, notifyCfg(100, 50*time.Millisecond, 200*time.Millisecond))
	dir, addr := t.TempDir(), freePort(t)
	p := startProcess(t, dir, addr, "--notify-config", cfgFile)
	kv, am := p.clients()
	ctx := context.Background()
	out, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam"), DataRetentionInHours: aws.Int32(24)})
	if err != nil {
		t.Fatal(err)
	}
	setNotification(t, kv, "cam", hook.url("/after-crash"))
	frags := mixedFragments(1_700_000_000_000, 6)
	res := putMediaTo(t, p.url, absolute("cam"), tagBody(true, frags).reader(), nil)
	if res.count("PERSISTED") != 6 {
		t.Fatalf("acks %+v", res.acks)
	}
	waitEvents(t, p.url, map[string]any{"StreamName": "cam"}, 10*time.Second, func(evs []apiEvent) bool {
		return len(evs) == 3 && countStatus(evs, "PENDING") == 3 && evs[0].Attempts >= 1
	})
	p.kill9()
	hook.up()
	p = startProcess(t, dir, addr, "--notify-config", cfgFile)
	got := waitFor(t, "webhook after restart", 3, 20*time.Second, hook.delivered)
	checkMessages(t, got, aws.ToString(out.StreamARN), frags, persistedNumbers(t, res), serverTimes(t, am, "cam"))
	waitEvents(t, p.url, map[string]any{"StreamName": "cam"}, 10*time.Second, func(evs []apiEvent) bool { return countStatus(evs, "DELIVERED") == 3 })
}

// Mosquitto restarted mid-stream: messages of fragments PERSISTED while
// the broker is away are retried and arrive after it is back, in order.
func TestNotifyMQTTBrokerRestart(t *testing.T) {
	addr := freePort(t)
	_, port, _ := strings.Cut(addr, ":")
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	// Run as this user (mosquitto started as root would switch to its own
	// user, who cannot write the persistence file in the test's directory).
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location "+dir+
		"/\nuser "+me.Username+"\nlog_type all\n"), 0o600)
	b := startBroker(t, "mosquitto", addr, "-c", conf)

	s := startServer(t, withNotify(notifyCfg(100, 50*time.Millisecond, 300*time.Millisecond)))
	topic := randomName("kinema-e2e/") + "/restart"
	sub := subscribeMQTT(t, addr, topic)
	arn := createStream(t, s, "cam", 1)
	setNotification(t, s.kv(), "cam", "mqtt://"+addr+"/"+topic)
	restartMidStream(t, s, arn, func() { sub.close(); b.stop() }, func() {
		b.start()
		if err := sub.connect(); err != nil {
			t.Fatal(err)
		}
	}, sub.delivered)
}

// NATS (JetStream) restarted mid-stream: the same, with a file-backed
// stream on a server this test owns.
func TestNotifyNATSServerRestart(t *testing.T) {
	addr := freePort(t)
	host, port, _ := strings.Cut(addr, ":")
	b := startBroker(t, "nats-server", addr, "-a", host, "-p", port, "-js", "-sd", t.TempDir())
	nc, err := nats.Connect("nats://"+addr, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctxT(t), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"cams.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, withNotify(notifyCfg(100, 50*time.Millisecond, 300*time.Millisecond)))
	arn := createStream(t, s, "cam", 1)
	setNotification(t, s.kv(), "cam", "nats://"+addr+"/cams.lobby")
	stored := func() []received {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, "EVENTS")
		if err != nil {
			return nil
		}
		cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return nil
		}
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			return nil
		}
		var out []received
		for m := range batch.Messages() {
			msg, f := decodeMessage(t, m.Data())
			out = append(out, received{id: m.Headers().Get("Nats-Msg-Id"), msg: msg, fields: f})
		}
		return out
	}
	restartMidStream(t, s, arn, b.stop, b.start, stored)
}

// restartMidStream streams 3 tagged fragments, waits for their messages,
// takes the broker down, streams 3 more (PERSISTED all the same), brings
// the broker back and expects all 6 messages, once each, in order.
func restartMidStream(t *testing.T, s *server, arn string, down, up func(), delivered func() []received) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan putResult, 1)
	persisted := make(chan string, 10)
	go func() {
		done <- putMediaTo(t, s.URL, absolute("cam"), pr, func(a ackJSON) {
			if a.EventType == "PERSISTED" {
				persisted <- a.FragmentNumber
			}
		})
	}()
	var frags []taggedFragment
	send := func(header bool, from int) {
		var fs []taggedFragment
		for i := from; i < from+3; i++ {
			fs = append(fs, taggedFragment{tc: 1_700_000_000_000 + uint64(i)*1000, notify: true, payload: map[string]string{"seq": fmt.Sprint(i)}})
		}
		frags = append(frags, fs...)
		pw.Write(tagBody(header, fs).b)
		for range fs {
			select {
			case <-persisted:
			case <-time.After(10 * time.Second):
				t.Fatal("no PERSISTED ack")
			}
		}
	}
	send(true, 0)
	waitFor(t, "before the restart", 3, 10*time.Second, delivered)
	down()
	send(false, 3)
	evs := waitEvents(t, s.URL, map[string]any{"StreamName": "cam"}, 10*time.Second, func(evs []apiEvent) bool {
		return len(evs) == 6 && evs[3].Attempts >= 2
	})
	t.Logf("broker down: %s", evs[3].LastError)
	up()
	got := waitFor(t, "after the restart", 6, 20*time.Second, delivered)
	pw.Close()
	res := <-done
	checkMessages(t, got, arn, frags, persistedNumbers(t, res), nil)
	for i, r := range got[:6] {
		if r.msg.NotificationPayload["seq"] != fmt.Sprint(i) {
			t.Fatalf("message %d is seq %s: out of order", i, r.msg.NotificationPayload["seq"])
		}
	}
}

// Bad configurations get KVS errors; an unreachable host is accepted (and
// logged), as a receiver may be down for now; a tagged fragment with an
// enormous tag value is refused by PutMedia (4009) and notifies nothing,
// while the fragment before it does.
func TestNotifyBadInput(t *testing.T) {
	nc := notifyCfg(10, 50*time.Millisecond, time.Second)
	nc.Topics["arn:aws:sns:us-west-2:123456789012:mapped"] = "http://127.0.0.1:9/x"
	s := startServer(t, withNotify(nc))
	createStream(t, s, "cam", 1)
	createStream(t, s, "no-archive", 0)
	cfg := func(status, uri string) string {
		return `{"StreamName":"cam","NotificationConfiguration":{"Status":"` + status + `","DestinationConfig":{"Uri":"` + uri + `"}}}`
	}
	cases := []struct {
		name, body, errType string
		status              int
	}{
		{"malformed Uri", cfg("ENABLED", "not a uri"), "InvalidArgumentException", 400},
		{"Uri too long", cfg("ENABLED", "https://h/"+strings.Repeat("a", 250)), "InvalidArgumentException", 400},
		{"unsupported scheme s3", cfg("ENABLED", "s3://bucket/prefix"), "InvalidArgumentException", 400},
		{"unsupported scheme ftp", cfg("ENABLED", "ftp://host/x"), "InvalidArgumentException", 400},
		{"unmapped topic", cfg("ENABLED", "arn:aws:sns:us-west-2:123456789012:unknown"), "InvalidArgumentException", 400},
		{"FIFO topic", cfg("ENABLED", "arn:aws:sns:us-west-2:123456789012:cams.fifo"), "InvalidArgumentException", 400},
		{"MQTT without topic", cfg("ENABLED", "mqtt://127.0.0.1:1883/"), "InvalidArgumentException", 400},
		{"MQTT wildcard", cfg("ENABLED", "mqtt://127.0.0.1:1883/cams/#"), "InvalidArgumentException", 400},
		{"NATS bad subject", cfg("ENABLED", "nats://127.0.0.1:4222/a..b"), "InvalidArgumentException", 400},
		{"bad port", cfg("ENABLED", "http://127.0.0.1:99999/x"), "InvalidArgumentException", 400},
		{"bad Status", cfg("ON", "http://127.0.0.1:9/x"), "InvalidArgumentException", 400},
		{"no Status", `{"StreamName":"cam","NotificationConfiguration":{"DestinationConfig":{"Uri":"http://h/x"}}}`, "InvalidArgumentException", 400},
		{"no Uri", `{"StreamName":"cam","NotificationConfiguration":{"Status":"ENABLED","DestinationConfig":{}}}`, "InvalidArgumentException", 400},
		{"Uri not a string", `{"StreamName":"cam","NotificationConfiguration":{"Status":"ENABLED","DestinationConfig":{"Uri":7}}}`, "SerializationException", 400},
		{"unknown stream", strings.Replace(cfg("ENABLED", "http://127.0.0.1:9/x"), `"cam"`, `"nope"`, 1), "ResourceNotFoundException", 404},
		{"no retention", strings.Replace(cfg("ENABLED", "http://127.0.0.1:9/x"), `"cam"`, `"no-archive"`, 1), "NoDataRetentionException", 400},
	}
	for _, c := range cases {
		resp, body := signedCall(t, s.URL, "updateNotificationConfiguration", c.body)
		if resp.StatusCode != c.status || resp.Header.Get("x-amzn-ErrorType") != c.errType || !strings.Contains(string(body), `"message"`) {
			t.Errorf("%s: HTTP %d %s %s, want %d %s", c.name, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), body, c.status, c.errType)
		}
	}
	_, err := s.kv().UpdateNotificationConfiguration(ctxT(t), &kinesisvideo.UpdateNotificationConfigurationInput{StreamName: aws.String("no-archive")})
	if err != nil {
		t.Fatalf("deleting the (absent) configuration of a stream without retention: %v", err)
	}
	_, errOut, err := s.awsCLI(t, "kinesisvideo", "update-notification-configuration", "--stream-name", "cam",
		"--notification-configuration", "Status=ENABLED,DestinationConfig={Uri=gopher://h/x}")
	if err == nil || !strings.Contains(errOut, "InvalidArgumentException") || !strings.Contains(errOut, "not supported") {
		t.Fatalf("AWS CLI with an unsupported scheme: %v %s", err, errOut)
	}

	// Unreachable at configuration time: accepted (documented), and the
	// mapped topic as well.
	for _, uri := range []string{"http://127.0.0.1:9/unreachable", "arn:aws:sns:us-west-2:123456789012:mapped", "nats://127.0.0.1:9/x.y"} {
		if st, body := signedJSON(t, s, "updateNotificationConfiguration", cfg("ENABLED", uri)); st != 200 {
			t.Fatalf("%s refused: %d %s", uri, st, body)
		}
	}
	// Absent configuration deletes it.
	if st, body := signedJSON(t, s, "updateNotificationConfiguration", `{"StreamName":"cam"}`); st != 200 {
		t.Fatalf("delete: %d %s", st, body)
	}
	if st, body := signedJSON(t, s, "describeNotificationConfiguration", `{"StreamName":"cam"}`); st != 200 || string(body) != "{}" {
		t.Fatalf("describe after delete: %d %s", st, body)
	}

	// Enormous tag values.
	hook := newHookReceiver(t)
	setNotification(t, s.kv(), "cam", hook.url("/x"))
	body := tagBody(true, []taggedFragment{{tc: 1_700_000_000_000, notify: true, payload: map[string]string{"ok": "1"}}})
	body.cluster(1_700_000_001_000, 3, 100).event(stream.TagNotification, "huge", strings.Repeat("x", 64<<10))
	res := putMedia(t, s, absolute("cam"), body.reader())
	if res.errorID() != 4009 || res.count("PERSISTED") != 1 {
		t.Fatalf("64 KiB tag value: acks %+v", res.acks)
	}
	// Past the 1 MiB bound on any metadata element: fragment too large.
	body = tagBody(true, nil).cluster(1_700_000_002_000, 3, 100).event(stream.TagNotification, "huge", strings.Repeat("x", 2<<20))
	if res := putMedia(t, s, absolute("cam"), body.reader()); res.errorID() != 4001 || res.count("PERSISTED") != 0 {
		t.Fatalf("2 MiB tag value: acks %+v", res.acks)
	}
	got := waitFor(t, "webhook", 1, 10*time.Second, hook.delivered)
	time.Sleep(300 * time.Millisecond)
	if len(hook.delivered()) != 1 || got[0].msg.NotificationPayload["ok"] != "1" {
		t.Fatalf("messages %+v", hook.delivered())
	}
	// Events API input errors.
	for _, in := range []string{`{"Status":"LOST"}`, `{"Kind":"THUMBNAIL"}`, `{"MaxResults":0}`, `{"NextToken":"!!"}`,
		`{"StartTimestamp":20,"EndTimestamp":10}`, `{"StreamName":"nope"}`} {
		if st, b := signedJSON(t, s, "listEvents", in); st/100 != 4 {
			t.Errorf("listEvents %s: %d %s", in, st, b)
		}
	}
	if st, b := signedJSON(t, s, "redriveEvents", `{"EventIds":["x"]}`); st != 400 {
		t.Errorf("redriveEvents with a bad id: %d %s", st, b)
	}
}

// The KVS producer SDK's own traffic (its audio/video sample, which sends a
// NOTIFICATION + IMAGE_GENERATION event): one webhook message for the
// fragment the event tags travel with, and one image-generation trigger.
func TestNotifyReplayProducerSDKEvents(t *testing.T) {
	dir := fixtureDir(t, "av-events-httpdata")
	reqs := loadRequests(t, dir)
	at, _ := time.Parse(time.RFC3339Nano, reqs[0].Time)
	s := replayServer(t, at, withNotify(notifyCfg(10, 50*time.Millisecond, time.Second)))
	addr := strings.TrimPrefix(s.URL, "http://")
	st := &stream.Stream{Account: "000000000000", Region: "us-west-2", Name: "av-stream", Version: "v1", Status: stream.StatusActive,
		Created: at, RetentionHours: 2, StorageTier: "HOT"}
	if err := s.Archive.Index.CreateStream(ctxT(t), st, nil); err != nil {
		t.Fatal(err)
	}
	hook := newHookReceiver(t)
	// Requests here must be signed at the recorded time; set the
	// configuration in the index, as the API handler would.
	if err := s.Archive.Index.SetNotificationConfig(ctxT(t), st.ID, &archive.NotificationConfig{Status: "ENABLED", URI: hook.url("/sdk")}); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs[:2] {
		sendRecorded(t, addr, r, []byte(r.Body), false)
	}
	body, _ := os.ReadFile(filepath.Join(dir, "putmedia-body.mkv"))
	acks := checkAckChunks(t, sendRecorded(t, addr, reqs[2], body, true).chunks)
	got := waitFor(t, "webhook", 1, 10*time.Second, hook.delivered)
	time.Sleep(300 * time.Millisecond)
	if len(hook.delivered()) != 1 {
		t.Fatalf("%d messages, want 1 (one event in the recording)", len(hook.delivered()))
	}
	m := got[0].msg
	if m.StreamArn != st.ARN() || m.FragmentStartProducerTimestamp != 1795237344494 || m.FragmentNumber != acks[0].FragmentNumber ||
		m.NotificationType != "PERSISTED" || len(m.NotificationPayload) != 0 || len(got[0].fields) != 6 {
		t.Fatalf("message %+v (first fragment %s)", m, acks[0].FragmentNumber)
	}
	// (Read from the index: this server's clock is pinned to the recording.)
	imgs, err := s.Archive.Index.OutboxEntries(ctxT(t), archive.OutboxQuery{StreamID: st.ID, Kind: archive.TriggerImageGeneration,
		StartMs: 0, EndMs: 1 << 50, Limit: 10})
	if err != nil || len(imgs) != 1 || imgs[0].Fragment.String() != m.FragmentNumber {
		t.Fatalf("image-generation triggers %+v %v", imgs, err)
	}
}
