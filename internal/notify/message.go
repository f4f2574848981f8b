package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// NotificationPersisted is the only NotificationType KVS documents.
const NotificationPersisted = "PERSISTED"

// Message is what every destination receives, as JSON: the fields of the
// SNS message KVS publishes (timestamps in epoch ms).
type Message struct {
	StreamArn                      string            `json:"StreamArn"`
	FragmentNumber                 string            `json:"FragmentNumber"`
	FragmentStartProducerTimestamp int64             `json:"FragmentStartProducerTimestamp"`
	FragmentStartServerTimestamp   int64             `json:"FragmentStartServerTimestamp"`
	NotificationType               string            `json:"NotificationType"`
	NotificationPayload            map[string]string `json:"NotificationPayload"`
}

// NewMessage builds the message of an outbox entry. The payload holds the
// fragment's custom tags (every tag not named AWS_KINESISVIDEO_*); with a
// repeated name the last value wins.
func NewMessage(st *stream.Stream, e archive.OutboxEntry) Message {
	m := Message{
		StreamArn: st.ARN(), FragmentNumber: e.Fragment.String(),
		FragmentStartProducerTimestamp: e.ProducerMs, FragmentStartServerTimestamp: e.ServerMs,
		NotificationType: NotificationPersisted, NotificationPayload: map[string]string{},
	}
	for _, t := range e.Tags {
		if !strings.HasPrefix(t.Name, stream.SystemTagPrefix) {
			m.NotificationPayload[t.Name] = t.Value
		}
	}
	return m
}

// MessageID is the stable id of an entry's message: a UUID derived from
// the fragment number and the notification type, the same on every
// attempt, after a restart and after a redrive, so receivers can drop
// duplicates.
func MessageID(e archive.OutboxEntry) string {
	h := sha256.Sum256([]byte("kinema notification\x00" + NotificationPersisted + "\x00" + e.Fragment.String()))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x80 // version 8: custom, name-based
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// Webhook request headers (docs/notifications.md).
const (
	HeaderMessageID = "X-Kinema-Message-Id"
	HeaderTimestamp = "X-Kinema-Timestamp"
	HeaderSignature = "X-Kinema-Signature"
	HeaderAttempt   = "X-Kinema-Attempt"
	// signatureVersion prefixes the signature so the scheme can change.
	signatureVersion = "v1="
)

// Sign computes the X-Kinema-Signature value: "v1=" and the hex
// HMAC-SHA256, keyed with the destination's secret, of
// "<timestamp>.<message id>.<body>". Binding the timestamp lets a
// receiver reject replays of an old request; binding the id keeps an
// attacker from pairing a body with another id.
func Sign(secret string, timestamp int64, id string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10) + "." + id + "."))
	m.Write(body)
	return signatureVersion + hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("signature does not match")
	ErrStale        = errors.New("timestamp outside the accepted window")
)

// Verify is what a receiver does with a webhook request: check the
// signature in constant time and reject a timestamp more than maxAge away
// from now.
func Verify(secret, timestampHeader, id, signature string, body []byte, maxAge time.Duration, now time.Time) error {
	ts, err := strconv.ParseInt(timestampHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q is not epoch seconds", HeaderTimestamp, timestampHeader)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxAge || d < -maxAge {
		return ErrStale
	}
	if !hmac.Equal([]byte(Sign(secret, ts, id, body)), []byte(signature)) {
		return ErrBadSignature
	}
	return nil
}

func marshal(m Message) []byte {
	b, _ := json.Marshal(m) // strings and integers only: cannot fail
	return b
}
