package stream

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseProducerStartTimestamp(t *testing.T) {
	cases := map[string]int64{
		"1795237808.72":     1795237808072, // the producer SDK: ms not zero-padded
		"1795237808.072":    1795237808072,
		"1795237808.7":      1795237808007,
		"1795237808":        1795237808000,
		"1700000000.123456": 1700000000123, // more than ms: a decimal fraction
		" 1700000000.5 ":    1700000000005,
	}
	for in, want := range cases {
		got, err := ParseProducerStartTimestamp(in)
		if err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "abc", "-1", "1.", "1.2.3", "1e9", "170000000000000"} {
		if _, err := ParseProducerStartTimestamp(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFragmentNumberWireForm(t *testing.T) {
	for _, n := range []FragmentNumber{1, 2, 12345678901234, 1<<63 - 1} {
		s := n.String()
		if len(s) != 47 {
			t.Fatalf("%d -> %q is not 47 digits", n, s)
		}
		back, err := ParseFragmentNumber(s)
		if err != nil || back != n {
			t.Fatalf("%q -> %d, %v", s, back, err)
		}
	}
	if FragmentNumber(9).String() >= FragmentNumber(10).String() {
		t.Fatal("string order differs from numeric order")
	}
	for _, bad := range []string{"", "1", "91343852333181432392682062000000000000000000001", "9134000000000000000000000000000000000000000000x"} {
		if _, err := ParseFragmentNumber(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestARN(t *testing.T) {
	s := Stream{Region: "eu-west-1", Account: "123456789012", Name: "cam-1", Created: time.UnixMilli(1613732218179)}
	arn := s.ARN()
	if arn != "arn:aws:kinesisvideo:eu-west-1:123456789012:stream/cam-1/1613732218179" {
		t.Fatal(arn)
	}
	p, err := ParseARN(arn)
	if err != nil || p.Name != "cam-1" || p.Account != "123456789012" || p.CreatedMs != 1613732218179 || p.Region != "eu-west-1" {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"arn:aws:s3:::bucket", "arn:aws:kinesisvideo:r:1:channel/x/1", "arn:aws:kinesisvideo:r:1:stream/x/abc"} {
		if _, err := ParseARN(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEpochSecondsJSON(t *testing.T) {
	var v struct{ T EpochSeconds }
	for in, want := range map[string]int64{`{"T":1700000000}`: 1700000000000, `{"T":1700000000.412}`: 1700000000412, `{"T":"1700000000.5"}`: 1700000000500} {
		if err := json.Unmarshal([]byte(in), &v); err != nil || v.T.Ms() != want {
			t.Errorf("%s: %d %v", in, v.T.Ms(), err)
		}
	}
	b, _ := json.Marshal(struct{ T EpochSeconds }{1700000000412})
	if string(b) != `{"T":1700000000.412}` {
		t.Fatal(string(b))
	}
	if err := json.Unmarshal([]byte(`{"T":"soon"}`), &v); err == nil {
		t.Fatal("accepted a non-number")
	}
}
