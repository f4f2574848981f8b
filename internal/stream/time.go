package stream

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// EpochMs is a point in time as epoch milliseconds, the unit of every
// timestamp Kinema stores.
type EpochMs = int64

// FormatEpochSeconds writes ms as epoch seconds with millisecond precision,
// the form KVS JSON timestamps take ("1700000000.412").
func FormatEpochSeconds(ms int64) string {
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	return fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000)
}

// EpochSeconds is a JSON timestamp: epoch seconds, integer or fractional
// (the AWS CLI sends integers, the Go SDK fractions). It decodes to ms.
type EpochSeconds int64

// UnmarshalJSON accepts a JSON number (or a string holding one).
func (e *EpochSeconds) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e13 {
		return fmt.Errorf("timestamp %s is not epoch seconds", string(b))
	}
	*e = EpochSeconds(math.Round(f * 1000))
	return nil
}

// MarshalJSON writes epoch seconds with millisecond precision.
func (e EpochSeconds) MarshalJSON() ([]byte, error) {
	return []byte(FormatEpochSeconds(int64(e))), nil
}

// Ms returns the value in epoch ms.
func (e EpochSeconds) Ms() int64 { return int64(e) }

// Time returns the value as a time.Time.
func (e EpochSeconds) Time() time.Time { return time.UnixMilli(int64(e)) }

var _ json.Marshaler = EpochSeconds(0)

// ParseProducerStartTimestamp reads x-amzn-producer-start-timestamp.
//
// The KVS producer SDK writes "<seconds>.<milliseconds>" with the
// milliseconds printed as an integer that is not zero-padded: 808 s + 72 ms
// is sent as "808.72". Kinema therefore reads a fraction of one to three
// digits as an integer number of milliseconds (three digits mean the same
// either way). A fraction of more than three digits cannot come from that
// SDK and is read as a decimal fraction of a second, truncated to ms.
func ParseProducerStartTimestamp(v string) (int64, error) {
	v = strings.TrimSpace(v)
	secPart, fracPart, hasFrac := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secPart, 10, 64)
	if err != nil || sec < 0 || sec > 1e11 {
		return 0, fmt.Errorf("producer start timestamp %q is not epoch seconds", v)
	}
	ms := sec * 1000
	if !hasFrac {
		return ms, nil
	}
	if fracPart == "" || strings.TrimLeft(fracPart, "0123456789") != "" {
		return 0, fmt.Errorf("producer start timestamp %q is not epoch seconds", v)
	}
	if len(fracPart) <= 3 {
		n, _ := strconv.ParseInt(fracPart, 10, 64)
		return ms + n, nil
	}
	n, _ := strconv.ParseInt(fracPart[:3], 10, 64)
	return ms + n, nil
}
