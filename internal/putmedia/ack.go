// Package putmedia is the PutMedia acknowledgement wire format, shared by
// the server (internal/ingest writes acks) and the client (internal/producer
// reads them): the event types, the KVS ErrorId values and their names, and
// the exact JSON line the producer SDK's parser accepts.
package putmedia

import (
	"strconv"
)

// Event types of PutMedia acknowledgements, upper case as the producer SDK
// matches them.
const (
	AckBuffering = "BUFFERING"
	AckReceived  = "RECEIVED"
	AckPersisted = "PERSISTED"
	AckError     = "ERROR"
	AckIdle      = "IDLE"
)

// Ack is one PutMedia acknowledgement.
type Ack struct {
	EventType        string
	FragmentTimecode uint64 // the Cluster Timecode exactly as the producer sent it
	FragmentNumber   string
	ErrorID          int
	HasFragment      bool
}

// Marshal writes the ack as one flat JSON object and a newline. The producer
// SDK's parser accepts only flat objects, needs ErrorId on ERROR, and takes
// FragmentTimecode as a number; hand-written to keep the hot path free of
// reflection.
func (a Ack) Marshal() []byte {
	b := make([]byte, 0, 160)
	b = append(b, `{"EventType":"`...)
	b = append(b, a.EventType...)
	b = append(b, '"')
	if a.HasFragment {
		b = append(b, `,"FragmentTimecode":`...)
		b = strconv.AppendUint(b, a.FragmentTimecode, 10)
		b = append(b, `,"FragmentNumber":"`...)
		b = append(b, a.FragmentNumber...)
		b = append(b, '"')
	}
	if a.EventType == AckError {
		b = append(b, `,"ErrorId":`...)
		b = strconv.AppendInt(b, int64(a.ErrorID), 10)
		if name := errorNames[a.ErrorID]; name != "" {
			b = append(b, `,"ErrorCode":"`...)
			b = append(b, name...)
			b = append(b, '"')
		}
	}
	b = append(b, "}\n"...)
	return b
}

// PutMedia ERROR ack ids (KVS ErrorId values).
const (
	ErrStreamRead          = 4000
	ErrMaxFragmentSize     = 4001
	ErrMaxFragmentDuration = 4002
	ErrMaxConnectionTime   = 4003
	ErrTimecodeBackwards   = 4004
	ErrInvalidMKV          = 4006
	ErrInvalidProducerTime = 4007
	ErrStreamNotActive     = 4008
	ErrMetadataLimit       = 4009
	ErrTrackMismatch       = 4010
	ErrTooManyTracks       = 4012
	ErrInternal            = 5000
	ErrArchival            = 5001
)

var errorNames = map[int]string{
	ErrStreamRead:          "STREAM_READ_ERROR",
	ErrMaxFragmentSize:     "MAX_FRAGMENT_SIZE_REACHED",
	ErrMaxFragmentDuration: "MAX_FRAGMENT_DURATION_REACHED",
	ErrMaxConnectionTime:   "MAX_CONNECTION_DURATION_REACHED",
	ErrTimecodeBackwards:   "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
	ErrInvalidMKV:          "INVALID_MKV_DATA",
	ErrInvalidProducerTime: "INVALID_PRODUCER_TIMESTAMP",
	ErrStreamNotActive:     "STREAM_NOT_ACTIVE",
	ErrMetadataLimit:       "FRAGMENT_METADATA_LIMIT_REACHED",
	ErrTrackMismatch:       "TRACK_NUMBER_MISMATCH",
	ErrTooManyTracks:       "MORE_THAN_ALLOWED_TRACKS_FOUND",
	ErrInternal:            "INTERNAL_ERROR",
	ErrArchival:            "ARCHIVAL_ERROR",
}

// ErrorName is the symbolic name of an ErrorId ("" when unknown).
func ErrorName(id int) string { return errorNames[id] }
