package cli

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/stream"
)

const eventsUsage = `usage:
  kinema events list [flags]           a stream's events (tagged fragments and their deliveries)
  kinema events dead-letters [flags]   events that gave up after their last attempt
  kinema events redrive [flags]        try dead events again (--id ID..., or all of --stream, or all;
                                       --kind IMAGE_GENERATION for image generation, default notifications)
  kinema events secret [flags] URL     the signing secret of a webhook URL (reads the data dir)

flags of list, dead-letters and redrive:
  --endpoint URL ($KINEMA_ENDPOINT, default http://127.0.0.1:4566), --region,
  --access-key ($AWS_ACCESS_KEY_ID), --secret-key ($AWS_SECRET_ACCESS_KEY),
  --stream NAME, and for list: --start, --end (RFC 3339 or epoch seconds),
  --status PENDING|DELIVERED|DEAD|SKIPPED; --kind NOTIFICATION|IMAGE_GENERATION;
  --json prints the API's JSON.
`

// eventsClient calls Kinema's events API, signed as the AWS SDKs sign.
type eventsClient struct {
	endpoint, region string
	creds            aws.Credentials
	http             *http.Client
}

func (c *eventsClient) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.endpoint, "/")+"/"+op, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, c.creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", c.region, time.Now()); err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		json.Unmarshal(b, &e)
		return fmt.Errorf("%s: %s (HTTP %d): %s", op, resp.Header.Get("x-amzn-ErrorType"), resp.StatusCode, e.Message)
	}
	return json.Unmarshal(b, out)
}

// apiEvent is an event as ListEvents returns it.
type apiEvent struct {
	EventID            string               `json:"EventId"`
	Kind               string               `json:"Kind"`
	StreamName         string               `json:"StreamName"`
	FragmentNumber     string               `json:"FragmentNumber"`
	ServerTimestamp    stream.EpochSeconds  `json:"ServerTimestamp"`
	Tags               map[string]string    `json:"Tags"`
	Status             string               `json:"Status"`
	Attempts           int                  `json:"Attempts"`
	LastError          string               `json:"LastError"`
	CompletedTimestamp *stream.EpochSeconds `json:"CompletedTimestamp"`
	Destination        string               `json:"Destination"`
}

// parseTime reads RFC 3339 or epoch seconds.
func parseTime(v string) (float64, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return float64(t.UnixMilli()) / 1000, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is neither RFC 3339 (2026-01-02T15:04:05Z) nor epoch seconds", v)
	}
	return f, nil
}

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, eventsUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("kinema events "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, eventsUsage) }
	endpoint := fs.String("endpoint", cmp.Or(env("KINEMA_ENDPOINT"), "http://127.0.0.1:4566"), "")
	region := fs.String("region", cmp.Or(env("AWS_REGION"), env("AWS_DEFAULT_REGION"), "us-east-1"), "")
	accessKey := fs.String("access-key", env("AWS_ACCESS_KEY_ID"), "")
	secretKey := fs.String("secret-key", env("AWS_SECRET_ACCESS_KEY"), "")
	streamName := fs.String("stream", "", "")
	start := fs.String("start", "", "")
	end := fs.String("end", "", "")
	status := fs.String("status", "", "")
	kind := fs.String("kind", "", "")
	asJSON := fs.Bool("json", false, "")
	var ids multiFlag
	fs.Var(&ids, "id", "")
	dataDir := fs.String("data-dir", "./data", "")
	notifyConfig := fs.String("notify-config", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if sub == "secret" {
		return eventsSecret(fs.Args(), *dataDir, *notifyConfig, env("KINEMA_SERVER_KEY"), stdout, stderr)
	}
	c := &eventsClient{endpoint: *endpoint, region: *region, http: &http.Client{Timeout: time.Minute},
		creds: aws.Credentials{AccessKeyID: *accessKey, SecretAccessKey: *secretKey}}
	in := map[string]any{}
	if *streamName != "" {
		in["StreamName"] = *streamName
	}
	if *kind != "" {
		in["Kind"] = *kind
	}
	switch sub {
	case "list", "dead-letters":
		if sub == "dead-letters" {
			*status = "DEAD"
		}
		for key, v := range map[string]string{"StartTimestamp": *start, "EndTimestamp": *end} {
			if v == "" {
				continue
			}
			f, err := parseTime(v)
			if err != nil {
				fmt.Fprintf(stderr, "kinema events: %v\n", err)
				return 2
			}
			in[key] = f
		}
		if *status != "" {
			in["Status"] = *status
		}
		return listEvents(ctx, c, in, *asJSON, stdout, stderr)
	case "redrive":
		if len(ids) > 0 {
			in["EventIds"] = []string(ids)
		}
		var out struct{ RedrivenEventIds []string }
		if err := c.call(ctx, "redriveEvents", in, &out); err != nil {
			fmt.Fprintf(stderr, "kinema events: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "redriven %d: %s\n", len(out.RedrivenEventIds), strings.Join(out.RedrivenEventIds, " "))
		return 0
	}
	fmt.Fprintf(stderr, "kinema events: unknown subcommand %q\n\n%s", sub, eventsUsage)
	return 2
}

func listEvents(ctx context.Context, c *eventsClient, in map[string]any, asJSON bool, stdout, stderr io.Writer) int {
	var all []json.RawMessage
	for {
		var page struct {
			Events    []json.RawMessage
			NextToken string
		}
		if err := c.call(ctx, "listEvents", in, &page); err != nil {
			fmt.Fprintf(stderr, "kinema events: %v\n", err)
			return 1
		}
		all = append(all, page.Events...)
		if page.NextToken == "" {
			break
		}
		in["NextToken"] = page.NextToken
	}
	if asJSON {
		b, _ := json.MarshalIndent(map[string]any{"Events": all}, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tSTREAM\tSERVER TIME\tFRAGMENT\tKIND\tSTATUS\tATTEMPTS\tDETAIL")
	for _, raw := range all {
		var e apiEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			fmt.Fprintf(stderr, "kinema events: %v\n", err)
			return 1
		}
		detail := e.LastError
		if e.Status == "DELIVERED" {
			detail = "to " + e.Destination
		}
		var tags []string
		for k, v := range e.Tags {
			if !strings.HasPrefix(k, stream.SystemTagPrefix) {
				tags = append(tags, k+"="+v)
			}
		}
		if len(tags) > 0 {
			detail = strings.TrimSpace(detail + " [" + strings.Join(tags, " ") + "]")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.EventID, e.StreamName,
			e.ServerTimestamp.Time().UTC().Format("2006-01-02T15:04:05.000Z"), e.FragmentNumber, e.Kind, e.Status, e.Attempts, detail)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d events\n", len(all))
	return 0
}

// eventsSecret prints a webhook's signing secret as the server computes it.
func eventsSecret(args []string, dataDir, configPath, serverKey string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: kinema events secret [--data-dir DIR] [--notify-config FILE] URL")
		return 2
	}
	var cfg notify.Config
	if configPath != "" {
		var err error
		if cfg, err = notify.LoadConfig(configPath); err != nil {
			fmt.Fprintf(stderr, "kinema events: %v\n", err)
			return 2
		}
	}
	d, err := cfg.Resolve(args[0])
	if err == nil && d.Transport != notify.Webhook {
		err = errors.New("only webhooks are signed")
	}
	if err == nil {
		// With KINEMA_SERVER_KEY the server derives the key from it.
		err = app.LoadNotifyKey(dataDir, serverKey, &cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kinema events: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, cfg.SecretFor(d.Target))
	return 0
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
