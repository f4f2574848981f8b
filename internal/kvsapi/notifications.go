package kvsapi

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/stream"
)

// reDestinationURI is DestinationConfig.Uri's pattern in the KVS model.
var reDestinationURI = regexp.MustCompile(`^[a-zA-Z_0-9]+:(//)?([^/]+)/?([^*]*)$`)

type notificationConfiguration struct {
	Status            *string `json:"Status"`
	DestinationConfig *struct {
		URI *string `json:"Uri"`
	} `json:"DestinationConfig"`
}

type updateNotificationConfigurationInput struct {
	streamRef
	NotificationConfiguration *notificationConfiguration `json:"NotificationConfiguration"`
}

// checkNotificationConfiguration applies the model's constraints, then
// Kinema's: the Uri must name a destination Kinema can deliver to.
func (s *Server) checkNotificationConfiguration(c *notificationConfiguration) (*archive.NotificationConfig, notify.Destination, error) {
	if c.Status == nil {
		return nil, notify.Destination{}, apierr.InvalidArg("NotificationConfiguration.Status is required")
	}
	if err := checkEnum("Status", *c.Status, "ENABLED", "DISABLED"); err != nil {
		return nil, notify.Destination{}, err
	}
	if c.DestinationConfig == nil || c.DestinationConfig.URI == nil {
		return nil, notify.Destination{}, apierr.InvalidArg("NotificationConfiguration.DestinationConfig.Uri is required")
	}
	uri := *c.DestinationConfig.URI
	if err := checkPattern("DestinationConfig.Uri", uri, 1, 255, reDestinationURI); err != nil {
		return nil, notify.Destination{}, err
	}
	d, err := s.notifyConfig().Resolve(uri)
	if err != nil {
		return nil, notify.Destination{}, apierr.InvalidArg("%v", err)
	}
	return &archive.NotificationConfig{Status: *c.Status, URI: uri}, d, nil
}

// notifyConfig is the notification configuration in force (an empty one,
// with no topic mappings, when the server runs without a Notifier).
func (s *Server) notifyConfig() *notify.Config {
	if s.cfg.Notify != nil {
		return s.cfg.Notify.Config()
	}
	return &notify.Config{}
}

func (s *Server) updateNotificationConfiguration(c *call) (any, error) {
	var in updateNotificationConfigurationInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	var cfg *archive.NotificationConfig
	var dest notify.Destination
	if in.NotificationConfiguration != nil {
		var err error
		if cfg, dest, err = s.checkNotificationConfiguration(in.NotificationConfiguration); err != nil {
			return nil, err
		}
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	if cfg != nil && st.RetentionHours == 0 {
		return nil, apierr.New("NoDataRetentionException",
			"stream %s keeps no data (DataRetentionInHours 0): notifications are sent for persisted fragments only", st.Name)
	}
	if err := s.cfg.Archive.Index.SetNotificationConfig(c.ctx, st.ID, cfg); err != nil {
		return nil, apierr.Internal(err)
	}
	if cfg == nil {
		c.log.Info("notification configuration deleted", "stream", st.Name)
		return nil, nil
	}
	c.log.Info("notification configuration set", "stream", st.Name, "status", cfg.Status, "uri", cfg.URI)
	if s.cfg.Notify != nil && cfg.Status == "ENABLED" {
		s.cfg.Notify.Probe(c.ctx, dest, st.Name)
	}
	return nil, nil
}

func (s *Server) describeNotificationConfiguration(c *call) (any, error) {
	var in streamRef
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	st, err := s.resolve(c.ctx, in)
	if err != nil {
		return nil, err
	}
	cfg, err := s.cfg.Archive.Index.NotificationConfig(c.ctx, st.ID)
	if errors.Is(err, archive.ErrNotFound) {
		return struct{}{}, nil
	}
	if err != nil {
		return nil, apierr.Internal(err)
	}
	type dest struct {
		URI string `json:"Uri"`
	}
	type conf struct {
		Status            string `json:"Status"`
		DestinationConfig dest   `json:"DestinationConfig"`
	}
	return map[string]conf{"NotificationConfiguration": {Status: cfg.Status, DestinationConfig: dest{URI: cfg.URI}}}, nil
}

// Event kinds on the wire, and the outbox kinds they stand for.
var eventKinds = map[string]archive.TriggerKind{
	"NOTIFICATION":     archive.TriggerNotification,
	"IMAGE_GENERATION": archive.TriggerImageGeneration,
}

func wireKind(k archive.TriggerKind) string {
	for w, a := range eventKinds {
		if a == k {
			return w
		}
	}
	return strings.ToUpper(string(k))
}

// event is one entry of the events timeline (ListEvents, a Kinema
// extension; docs/notifications.md).
type event struct {
	EventID              string               `json:"EventId"`
	Kind                 string               `json:"Kind"`
	StreamName           string               `json:"StreamName,omitempty"`
	StreamARN            string               `json:"StreamARN,omitempty"`
	FragmentNumber       string               `json:"FragmentNumber"`
	ProducerTimestamp    stream.EpochSeconds  `json:"ProducerTimestamp"`
	ServerTimestamp      stream.EpochSeconds  `json:"ServerTimestamp"`
	PersistedTimestamp   stream.EpochSeconds  `json:"PersistedTimestamp"`
	Tags                 map[string]string    `json:"Tags,omitempty"`
	MessageID            string               `json:"MessageId,omitempty"`
	Status               string               `json:"Status"`
	Attempts             int                  `json:"Attempts"`
	LastError            string               `json:"LastError,omitempty"`
	LastAttemptTimestamp *stream.EpochSeconds `json:"LastAttemptTimestamp,omitempty"`
	NextAttemptTimestamp *stream.EpochSeconds `json:"NextAttemptTimestamp,omitempty"`
	CompletedTimestamp   *stream.EpochSeconds `json:"CompletedTimestamp,omitempty"`
	Destination          string               `json:"Destination,omitempty"`
}

func epochPtr(ms int64) *stream.EpochSeconds {
	if ms == 0 {
		return nil
	}
	e := stream.EpochSeconds(ms)
	return &e
}

func toEvent(e archive.OutboxEntry, st *stream.Stream) event {
	ev := event{
		EventID: strconv.FormatInt(e.ID, 10), Kind: wireKind(e.Kind), FragmentNumber: e.Fragment.String(),
		ProducerTimestamp: stream.EpochSeconds(e.ProducerMs), ServerTimestamp: stream.EpochSeconds(e.ServerMs),
		PersistedTimestamp: stream.EpochSeconds(e.CreatedMs), Status: string(e.State), Attempts: e.Attempts,
		LastError: e.LastError, LastAttemptTimestamp: epochPtr(e.LastAttemptMs), CompletedTimestamp: epochPtr(e.DoneMs),
		Destination: e.Destination,
	}
	if st != nil {
		ev.StreamName, ev.StreamARN = st.Name, st.ARN()
	}
	if e.State == archive.OutboxPending {
		ev.NextAttemptTimestamp = epochPtr(e.NextMs)
	}
	if e.Kind == archive.TriggerNotification {
		ev.MessageID = notify.MessageID(e)
	}
	for _, t := range e.Tags {
		if ev.Tags == nil {
			ev.Tags = map[string]string{}
		}
		ev.Tags[t.Name] = t.Value
	}
	return ev
}

type listEventsInput struct {
	StreamName     *string              `json:"StreamName"`
	StreamARN      *string              `json:"StreamARN"`
	StartTimestamp *stream.EpochSeconds `json:"StartTimestamp"`
	EndTimestamp   *stream.EpochSeconds `json:"EndTimestamp"`
	Kind           *string              `json:"Kind"`
	Status         *string              `json:"Status"`
	MaxResults     *int64               `json:"MaxResults"`
	NextToken      *string              `json:"NextToken"`
}

const maxEventsPage = 1000

// listEvents lists a stream's events (every stream's without a stream) by
// fragment server time: the tagged fragments and how their work went.
func (s *Server) listEvents(c *call) (any, error) {
	var in listEventsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	q := archive.OutboxQuery{StartMs: 0, EndMs: 1<<53 - 1, Limit: 100}
	var only *stream.Stream
	if in.StreamName != nil || in.StreamARN != nil {
		st, err := s.resolve(c.ctx, streamRef{StreamName: in.StreamName, StreamARN: in.StreamARN})
		if err != nil {
			return nil, err
		}
		only, q.StreamID = st, st.ID
	} else if err := s.requireRoot(c.ctx, "ListEvents"); err != nil {
		return nil, err
	}
	if in.StartTimestamp != nil {
		q.StartMs = in.StartTimestamp.Ms()
	}
	if in.EndTimestamp != nil {
		q.EndMs = in.EndTimestamp.Ms()
	}
	if q.EndMs < q.StartMs {
		return nil, apierr.InvalidArg("EndTimestamp is before StartTimestamp")
	}
	if in.Kind != nil {
		k, ok := eventKinds[*in.Kind]
		if !ok {
			return nil, apierr.InvalidArg("Kind %q is not one of NOTIFICATION, IMAGE_GENERATION", *in.Kind)
		}
		q.Kind = k
	}
	if in.Status != nil {
		if err := checkEnum("Status", *in.Status, string(archive.OutboxPending), string(archive.OutboxDelivered),
			string(archive.OutboxDead), string(archive.OutboxSkipped)); err != nil {
			return nil, err
		}
		q.State = archive.OutboxState(*in.Status)
	}
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > maxEventsPage {
			return nil, apierr.InvalidArg("MaxResults must be 1 to %d; got %d", maxEventsPage, *in.MaxResults)
		}
		q.Limit = int(*in.MaxResults)
	}
	if in.NextToken != nil {
		cur, err := decodeToken("NextToken", *in.NextToken, 4096)
		if err != nil {
			return nil, err
		}
		if _, err := fmt.Sscanf(cur, "%d:%d", &q.AfterMs, &q.AfterID); err != nil || q.AfterID <= 0 {
			return nil, apierr.InvalidArg("NextToken is not a token this server issued")
		}
	}
	limit := q.Limit
	q.Limit++
	es, err := s.cfg.Archive.Index.OutboxEntries(c.ctx, q)
	if err != nil {
		return nil, apierr.Internal(err)
	}
	out := struct {
		Events    []event `json:"Events"`
		NextToken string  `json:"NextToken,omitempty"`
	}{Events: []event{}}
	streams := map[int64]*stream.Stream{}
	if only != nil {
		streams[only.ID] = only
	}
	for i, e := range es {
		if i == limit {
			prev := es[i-1]
			out.NextToken = encodeToken(fmt.Sprintf("%d:%d", prev.ServerMs, prev.ID))
			break
		}
		st, ok := streams[e.StreamID]
		if !ok {
			st, err = s.cfg.Archive.Index.StreamByID(c.ctx, e.StreamID)
			if err != nil && !errors.Is(err, archive.ErrNotFound) {
				return nil, apierr.Internal(err)
			}
			streams[e.StreamID] = st // nil for a deleted stream
		}
		out.Events = append(out.Events, toEvent(e, st))
	}
	return out, nil
}

type redriveEventsInput struct {
	StreamName *string  `json:"StreamName"`
	StreamARN  *string  `json:"StreamARN"`
	EventIDs   []string `json:"EventIds"`
	// Kind is NOTIFICATION (the default) or IMAGE_GENERATION.
	Kind *string `json:"Kind"`
}

// redriver is an outbox consumer that can take its dead rows back.
type redriver interface {
	Redrive(ctx context.Context, streamID int64, ids []int64) ([]archive.OutboxEntry, error)
}

// redriveEvents retries dead events of one kind again: those listed, or
// every dead one of the stream (of every stream without a stream).
func (s *Server) redriveEvents(c *call) (any, error) {
	var in redriveEventsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	kind := "NOTIFICATION"
	if in.Kind != nil {
		kind = *in.Kind
	}
	var worker redriver
	switch kind {
	case "NOTIFICATION":
		if s.cfg.Notify != nil {
			worker = s.cfg.Notify
		}
	case "IMAGE_GENERATION":
		if s.cfg.ImageGeneration != nil {
			worker = s.cfg.ImageGeneration
		}
	default:
		return nil, apierr.InvalidArg("Kind %q is neither NOTIFICATION nor IMAGE_GENERATION", kind)
	}
	if worker == nil {
		return nil, apierr.New("ServiceUnavailableException", "%s is not running on this server", strings.ToLower(kind))
	}
	if len(in.EventIDs) > maxEventsPage {
		return nil, apierr.InvalidArg("at most %d EventIds per call; got %d", maxEventsPage, len(in.EventIDs))
	}
	ids := make([]int64, 0, len(in.EventIDs))
	for _, v := range in.EventIDs {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return nil, apierr.InvalidArg("EventId %q is not an event id", v)
		}
		ids = append(ids, id)
	}
	var streamID int64
	if in.StreamName != nil || in.StreamARN != nil {
		st, err := s.resolve(c.ctx, streamRef{StreamName: in.StreamName, StreamARN: in.StreamARN})
		if err != nil {
			return nil, err
		}
		streamID = st.ID
	} else if err := s.requireRoot(c.ctx, "RedriveEvents"); err != nil {
		return nil, err
	}
	es, err := worker.Redrive(c.ctx, streamID, ids)
	if err != nil {
		return nil, apierr.Internal(err)
	}
	out := struct {
		RedrivenEventIds []string `json:"RedrivenEventIds"`
	}{RedrivenEventIds: []string{}}
	for _, e := range es {
		out.RedrivenEventIds = append(out.RedrivenEventIds, strconv.FormatInt(e.ID, 10))
	}
	c.log.Info("dead events redriven", "kind", kind, "n", len(es))
	return out, nil
}
