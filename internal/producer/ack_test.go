package producer

import (
	"strings"
	"testing"
)

// TestReadAcks: numbers or digit strings, acks back to back or on lines,
// and a clear error for a malformed one.
func TestReadAcks(t *testing.T) {
	in := `{"EventType":"BUFFERING","FragmentTimecode":"123","FragmentNumber":"9"}` +
		`{"EventType":"ERROR","FragmentTimecode":123,"FragmentNumber":"9","ErrorId":"4006","ErrorCode":"INVALID_MKV_DATA"}` +
		"\n  {\"EventType\":\"IDLE\",\"Unknown\":{\"x\":1}}\n{bad"
	out := make(chan ackEvent)
	go readAcks(strings.NewReader(in), out, make(chan struct{}))
	var got []Ack
	for ev := range out {
		if ev.err != nil {
			if !strings.Contains(ev.err.Error(), "malformed ack") {
				t.Errorf("error %v", ev.err)
			}
			break
		}
		got = append(got, ev.ack)
	}
	if len(got) != 3 {
		t.Fatalf("acks %+v", got)
	}
	if a := got[0]; a.EventType != AckBuffering || a.FragmentTimecode != 123 || a.FragmentNumber != "9" || a.Fragment != -1 {
		t.Errorf("%+v", a)
	}
	if a := got[1]; a.ErrorID != 4006 || a.ErrorCode != "INVALID_MKV_DATA" ||
		a.String() != "ERROR     fragment 9 timecode 123 error 4006 INVALID_MKV_DATA" {
		t.Errorf("%+v: %q", a, a.String())
	}
	if a := got[2]; a.EventType != AckIdle || a.String() != "IDLE     " {
		t.Errorf("%+v: %q", a, a.String())
	}
}
