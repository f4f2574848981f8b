package notify

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Transport is how a destination is reached.
type Transport string

const (
	Webhook Transport = "webhook"
	MQTT    Transport = "mqtt"
	NATS    Transport = "nats"
)

// Destination is a parsed, resolved notification destination.
type Destination struct {
	URI       string // as configured: a target URI or an SNS topic ARN
	Target    string // the URI messages go to (URI, or what the topic maps to)
	Transport Transport
	// URL is Target parsed; for MQTT and NATS, Addr is its host:port and
	// Topic the MQTT topic or NATS subject.
	URL   *url.URL
	Addr  string
	Topic string
}

// Default ports of the broker schemes.
const (
	defaultMQTTPort = "1883"
	defaultNATSPort = "4222"
)

// ParseTarget parses a destination URI (not a topic ARN): http(s)://…,
// mqtt://host[:port]/topic or nats://host[:port]/subject. The error says
// what is wrong in words a user can act on.
func ParseTarget(uri string) (Destination, error) {
	if !utf8.ValidString(uri) {
		return Destination{}, fmt.Errorf("Uri is not valid UTF-8")
	}
	u, err := url.Parse(uri)
	if err != nil {
		return Destination{}, fmt.Errorf("Uri %q is malformed: %v", uri, err)
	}
	d := Destination{URI: uri, Target: uri, URL: u}
	if u.Opaque != "" || u.Host == "" {
		return Destination{}, fmt.Errorf("Uri %q has no host: write scheme://host[:port]/…", uri)
	}
	if u.Port() != "" && !validPort(u.Port()) {
		return Destination{}, fmt.Errorf("Uri %q has an invalid port", uri)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		d.Transport = Webhook
		if u.Fragment != "" {
			return Destination{}, fmt.Errorf("Uri %q: a webhook URL cannot have a #fragment", uri)
		}
		return d, nil
	case "mqtt":
		d.Transport = MQTT
		d.Addr = hostPort(u, defaultMQTTPort)
		d.Topic = strings.TrimPrefix(u.Path, "/")
		if d.Topic == "" {
			return Destination{}, fmt.Errorf("Uri %q names no MQTT topic: write mqtt://host[:port]/topic", uri)
		}
		if strings.ContainsAny(d.Topic, "+\x00") || strings.Contains(uri, "#") {
			return Destination{}, fmt.Errorf("MQTT topic %q has a wildcard (+ or #) or NUL, which a publication cannot", d.Topic)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return Destination{}, fmt.Errorf("Uri %q: an MQTT destination takes no query or #fragment", uri)
		}
		return d, nil
	case "nats":
		d.Transport = NATS
		d.Addr = hostPort(u, defaultNATSPort)
		d.Topic = strings.TrimPrefix(u.Path, "/")
		if err := checkSubject(d.Topic); err != nil {
			return Destination{}, fmt.Errorf("Uri %q: %v", uri, err)
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return Destination{}, fmt.Errorf("Uri %q: a NATS destination takes no credentials, query or #fragment", uri)
		}
		return d, nil
	case "":
		return Destination{}, fmt.Errorf("Uri %q has no scheme", uri)
	}
	return Destination{}, fmt.Errorf("Uri scheme %q is not supported: use an SNS topic ARN mapped in Kinema's configuration, http, https, mqtt or nats", u.Scheme)
}

func validPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n > 0 && n < 65536
}

func hostPort(u *url.URL, defPort string) string {
	port := u.Port()
	if port == "" {
		port = defPort
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// checkSubject applies NATS subject rules for a publication: dot-separated
// non-empty tokens, no whitespace, no wildcards.
func checkSubject(s string) error {
	if s == "" {
		return fmt.Errorf("no NATS subject: write nats://host[:port]/subject")
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("NATS subject %q has an empty token", s)
		}
		if tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n\x00*>") {
			return fmt.Errorf("NATS subject %q has a wildcard or whitespace, which a publication cannot", s)
		}
	}
	return nil
}

// TopicARN is a parsed SNS topic ARN.
type TopicARN struct {
	Partition, Region, Account, Name string
}

// ParseTopicARN reads arn:PARTITION:sns:REGION:ACCOUNT:NAME.
func ParseTopicARN(s string) (TopicARN, error) {
	f := strings.Split(s, ":")
	if len(f) != 6 || f[0] != "arn" || f[2] != "sns" || f[1] == "" || f[3] == "" || f[4] == "" || f[5] == "" {
		return TopicARN{}, fmt.Errorf("%q is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", s)
	}
	return TopicARN{Partition: f[1], Region: f[3], Account: f[4], Name: f[5]}, nil
}

// isARN tells topic ARNs from target URIs.
func isARN(uri string) bool { return strings.HasPrefix(uri, "arn:") }
