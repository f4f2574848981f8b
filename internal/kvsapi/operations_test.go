package kvsapi

import (
	"os"
	"strings"
	"testing"
)

// docs/security.md documents the action of every operation the server
// routes; a new route without a line there fails here.
func TestSecurityDocListsEveryAction(t *testing.T) {
	b, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, op := range Operations() {
		if !strings.Contains(doc, op.Name) {
			t.Errorf("docs/security.md does not mention operation %s (%s)", op.Name, op.Action)
		}
		_, name, _ := strings.Cut(op.Action, ":")
		if !strings.Contains(doc, op.Action) && !strings.Contains(doc, name) {
			t.Errorf("docs/security.md does not give the action of %s (%s)", op.Name, op.Action)
		}
	}
}
