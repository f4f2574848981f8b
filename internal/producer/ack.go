package producer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/kinema/kinema/internal/putmedia"
)

// Ack event types, as the wire spells them.
const (
	AckBuffering = putmedia.AckBuffering
	AckReceived  = putmedia.AckReceived
	AckPersisted = putmedia.AckPersisted
	AckError     = putmedia.AckError
	AckIdle      = putmedia.AckIdle
)

// Ack is one PutMedia acknowledgement: the server's JSON fields, plus what
// the client measured.
type Ack struct {
	EventType        string
	FragmentTimecode uint64 // the Cluster Timecode as sent
	FragmentNumber   string
	ErrorID          int    `json:"ErrorId"`
	ErrorCode        string `json:",omitempty"`

	// Fragment is the index of the fragment the ack names (counting across
	// Loop repeats), or -1 when no sent fragment has its timecode.
	Fragment int `json:"-"`
	// At is when the ack was read.
	At time.Time `json:"-"`
	// Latency, for RECEIVED and PERSISTED, is the time since the fragment
	// was complete on the wire: since its end-of-fragment tag was sent, or
	// without those tags since the next Cluster or the end of the body began
	// to go out. Zero for other types.
	Latency time.Duration `json:"-"`
}

func (a Ack) String() string {
	s := fmt.Sprintf("%-9s", a.EventType)
	if a.FragmentNumber != "" {
		s += fmt.Sprintf(" fragment %s timecode %d", a.FragmentNumber, a.FragmentTimecode)
	}
	if a.EventType == AckError {
		s += fmt.Sprintf(" error %d", a.ErrorID)
		if a.ErrorCode != "" {
			s += " " + a.ErrorCode
		}
	}
	if a.Latency > 0 {
		s += " latency " + a.Latency.Round(time.Millisecond).String()
	}
	return s
}

// UnmarshalJSON accepts FragmentTimecode and ErrorId as numbers or as
// strings of digits, as the SDK's parser does.
func (a *Ack) UnmarshalJSON(b []byte) error {
	var raw struct {
		EventType        string
		FragmentTimecode json.RawMessage
		FragmentNumber   json.RawMessage
		ErrorID          json.RawMessage `json:"ErrorId"`
		ErrorCode        string
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*a = Ack{EventType: raw.EventType, ErrorCode: raw.ErrorCode, Fragment: -1}
	var err error
	if a.FragmentTimecode, err = jsonUint(raw.FragmentTimecode); err != nil {
		return fmt.Errorf("FragmentTimecode: %w", err)
	}
	if len(raw.FragmentNumber) > 0 {
		a.FragmentNumber = string(bytes.Trim(raw.FragmentNumber, `"`))
	}
	id, err := jsonUint(raw.ErrorID)
	if err != nil {
		return fmt.Errorf("ErrorId: %w", err)
	}
	a.ErrorID = int(id)
	return nil
}

func jsonUint(b []byte) (uint64, error) {
	if len(b) == 0 || string(b) == "null" {
		return 0, nil
	}
	return strconv.ParseUint(string(bytes.Trim(b, `"`)), 10, 64)
}

// ackEvent is one step of reading the ack stream: an ack, or the end.
type ackEvent struct {
	ack Ack
	err error // io.EOF at the end of the response
}

// readAcks decodes the ack stream (JSON objects, separated by whitespace,
// usually one per line and one per HTTP chunk) until the response ends.
func readAcks(body io.Reader, out chan<- ackEvent, stop <-chan struct{}) {
	dec := json.NewDecoder(body)
	for {
		var a Ack
		err := dec.Decode(&a)
		if err != nil {
			var se *json.SyntaxError
			var te *json.UnmarshalTypeError
			if errors.As(err, &se) || errors.As(err, &te) {
				err = fmt.Errorf("malformed ack: %w", err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("response ended inside an ack: %w", err)
			}
		}
		a.At = time.Now()
		select {
		case out <- ackEvent{ack: a, err: err}:
		case <-stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// RejectedError is the error of a Put that received an ERROR ack.
type RejectedError struct{ Ack Ack }

func (e *RejectedError) Error() string {
	s := fmt.Sprintf("producer: ERROR ack %d", e.Ack.ErrorID)
	if e.Ack.ErrorCode != "" {
		s += " (" + e.Ack.ErrorCode + ")"
	}
	if e.Ack.FragmentNumber != "" {
		s += fmt.Sprintf(" for fragment %s (timecode %d)", e.Ack.FragmentNumber, e.Ack.FragmentTimecode)
	}
	return s
}
