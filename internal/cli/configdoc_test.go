package cli

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

const configDoc = "../../docs/configuration.md"

// Markers around the generated part of docs/configuration.md.
const (
	docBegin = "<!-- options: generated from kinema serve's flags by TestConfigurationDoc; do not edit by hand -->"
	docEnd   = "<!-- end of options -->"
)

// optionsTable is the reference of every configuration key: every flag of
// kinema serve, then the secrets, as Markdown.
func optionsTable() string {
	var o serveOptions
	fs := serveFlags(&o, func(string) string { return "" })
	var b strings.Builder
	b.WriteString("| key | flag | value | default | meaning |\n| --- | --- | --- | --- | --- |\n")
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		if kind == "" {
			kind = "true or false"
		}
		key := "`" + f.Name + "`"
		if f.Name == "config" {
			key = "(command line only)"
		}
		def := "`" + f.DefValue + "`"
		if f.DefValue == "" {
			def = "(none)"
		}
		if v, ok := serveEnvFlags[f.Name]; ok {
			def = "`$" + v + "`, else (none)"
		}
		fmt.Fprintf(&b, "| %s | `--%s` | %s | %s | %s |\n", key, f.Name, kind, def, mdCell(usage))
	})
	b.WriteString("\nSecrets are not flags (a command line is visible to every user of the machine): they come from the environment, else from the file.\n\n")
	b.WriteString("| key | environment | meaning |\n| --- | --- | --- |\n")
	for _, s := range o.secrets() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", s.name, s.env, mdCell(s.help))
	}
	return b.String()
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// TestConfigurationDoc: docs/configuration.md documents every option of
// kinema serve, exactly as the flags define them, so the reference cannot
// drift from the code. KINEMA_UPDATE_DOCS=1 rewrites the generated part.
func TestConfigurationDoc(t *testing.T) {
	data, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, docBegin), strings.Index(doc, docEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q ... %q", configDoc, docBegin, docEnd)
	}
	want := doc[:i] + docBegin + "\n" + optionsTable() + docEnd + doc[j+len(docEnd):]
	if want == doc {
		return
	}
	if os.Getenv("KINEMA_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(configDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the options of %s", configDoc)
		return
	}
	var o serveOptions
	for _, k := range configKeys(serveFlags(&o, func(string) string { return "" }), o.secrets()) {
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("%s does not document %s", configDoc, k)
		}
	}
	t.Fatalf("the options in %s are out of date with kinema serve's flags: run KINEMA_UPDATE_DOCS=1 go test ./internal/cli -run TestConfigurationDoc", configDoc)
}

// Every example kinema.yaml in docs/configuration.md is a valid
// configuration.
func TestConfigurationDocExamples(t *testing.T) {
	data, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) < 2 {
		t.Fatalf("%d YAML examples in %s, want at least the embedded default and PostgreSQL + S3", len(blocks), configDoc)
	}
	for n, b := range blocks {
		if _, err := loadServe(t, b[1], nil); err != nil {
			t.Errorf("example %d: %v\n%s", n+1, err, b[1])
		}
	}
}
