package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// A configuration file (kinema serve --config FILE) sets flags, so that
// every flag, including ones added later, is configurable with no code of
// its own. The rules (docs/configuration.md):
//
//   - A key is a flag's name without the dashes in front: `region: eu-west-1`
//     is --region eu-west-1.
//   - A mapping joins its key to the keys inside it with "-":
//     `s3: {endpoint: X}` is --s3-endpoint X. Nested and flat spellings are
//     the same key; a flag set twice is an error. A key holds a value or a
//     mapping, never both: `media: s3://b/p` and `media-put-interval: 1s`
//     set --media and --media-put-interval side by side.
//   - A value is a scalar, read as its text exactly as the flag parses that
//     text from the command line (30s, 0.5, true, 10000). Lists and null are
//     errors.
//   - A few keys set what no flag may carry, because a command line is
//     visible to every user of the machine: the secrets (fileSecret).
//   - Precedence: the command line, then the environment (serveEnvFlags:
//     KINEMA_INDEX, KINEMA_MEDIA, ... and the secrets' variables), then the file, then the
//     built-in defaults.
//
// An unknown key, a bad value or a malformed file is an error naming the
// file, the line and the key; nothing in a file is ignored.

// configSetting is one key of a file, flattened to the flag it sets.
type configSetting struct {
	key   string // as written, with "." between levels: s3.endpoint
	name  string // the flag or secret it sets: s3-endpoint
	value string
	line  int
}

// configError is a problem with the configuration file; serve exits 2.
type configError struct {
	file string
	line int
	msg  string
}

func (e *configError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	return e.file + ": " + e.msg
}

// readConfigFile parses a YAML configuration file into its settings, in
// the order they appear.
func readConfigFile(path string) ([]configSetting, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &configError{file: path, msg: err.Error()}
	}
	return parseConfig(path, data)
}

func parseConfig(file string, data []byte) ([]configSetting, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file sets nothing
		}
		return nil, &configError{file: file, msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &configError{file: file, line: extra.Line, msg: "more than one YAML document; a configuration is one mapping"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil // only comments
	}
	if root.Kind != yaml.MappingNode {
		return nil, &configError{file: file, line: root.Line, msg: "the configuration must be a mapping of option names to values"}
	}
	var out []configSetting
	seen := map[string]configSetting{}
	var walk func(m *yaml.Node, keyPrefix, namePrefix string) error
	walk = func(m *yaml.Node, keyPrefix, namePrefix string) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			for v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			if k.Kind != yaml.ScalarNode || k.Value == "" || k.Tag == "!!merge" {
				where := "at the top level"
				if keyPrefix != "" {
					where = "under " + strings.TrimSuffix(keyPrefix, ".")
				}
				return &configError{file: file, line: k.Line, msg: fmt.Sprintf("key %q %s is not an option name", k.Value, where)}
			}
			key, name := keyPrefix+k.Value, namePrefix+k.Value
			switch v.Kind {
			case yaml.MappingNode:
				if len(v.Content) == 0 {
					return &configError{file: file, line: v.Line, msg: fmt.Sprintf("%s: an empty mapping sets nothing; remove it or give it keys", key)}
				}
				if err := walk(v, key+".", name+"-"); err != nil {
					return err
				}
				continue
			case yaml.SequenceNode:
				return &configError{file: file, line: v.Line, msg: fmt.Sprintf("%s: a list, but every option takes one value", key)}
			}
			if v.Tag == "!!null" {
				return &configError{file: file, line: v.Line, msg: fmt.Sprintf("%s has no value (write \"\" for an empty string)", key)}
			}
			s := configSetting{key: key, name: name, value: v.Value, line: k.Line}
			if prev, dup := seen[name]; dup {
				return &configError{file: file, line: k.Line, msg: fmt.Sprintf("%s sets --%s, which %s (line %d) already sets", key, name, prev.key, prev.line)}
			}
			seen[name] = s
			out = append(out, s)
		}
		return nil
	}
	if err := walk(root, "", ""); err != nil {
		return nil, err
	}
	return out, nil
}

// fileSecret is a key only a configuration file (or the environment) can
// set: a secret, kept off the command line.
type fileSecret struct {
	name string // the key, like a flag name: s3-secret-access-key
	env  string // the environment variable that overrides it
	help string
	dst  *string
}

// applyConfig applies the file's settings to fs and secrets: a flag given
// on the command line (set) keeps its value, as does one whose
// environment variable is not empty (envSet); a secret takes its
// environment variable when that is set. Errors name the file, the line
// and the key.
func applyConfig(file string, settings []configSetting, fs *flag.FlagSet, secrets []fileSecret, set, envSet map[string]bool, env func(string) string) error {
	bySecret := map[string]fileSecret{}
	for _, s := range secrets {
		bySecret[s.name] = s
	}
	for _, s := range settings {
		if s.name == "config" {
			return &configError{file: file, line: s.line, msg: "config: a configuration file cannot name another"}
		}
		if sec, ok := bySecret[s.name]; ok {
			if env(sec.env) == "" {
				*sec.dst = s.value
			}
			continue
		}
		f := fs.Lookup(s.name)
		if f == nil {
			return &configError{file: file, line: s.line, msg: fmt.Sprintf("unknown option %s (there is no --%s; docs/configuration.md lists them)", s.key, s.name)}
		}
		if set[s.name] || envSet[s.name] {
			continue
		}
		if err := fs.Set(s.name, s.value); err != nil {
			return &configError{file: file, line: s.line, msg: fmt.Sprintf("%s: invalid value %q for --%s: %v%s", s.key, s.value, s.name, err, wantedValue(f))}
		}
	}
	return nil
}

// wantedValue says what kind of value a flag takes: the flag package's
// own errors say only "parse error".
func wantedValue(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case time.Duration:
		return " (want a duration with its unit, such as 500ms, 30s or 1m30s)"
	case bool:
		return " (want true or false)"
	case int, int64, uint, uint64:
		return " (want a whole number)"
	case float64:
		return " (want a number)"
	}
	return ""
}

// flagsSet returns the flags the command line set.
func flagsSet(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// configKeys lists every key a configuration file may hold: the flags
// (but --config) and the secrets, sorted. docs/configuration.md is checked
// against it.
func configKeys(fs *flag.FlagSet, secrets []fileSecret) []string {
	var keys []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			keys = append(keys, f.Name)
		}
	})
	for _, s := range secrets {
		keys = append(keys, s.name)
	}
	sort.Strings(keys)
	return keys
}
