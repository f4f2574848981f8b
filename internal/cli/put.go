package cli

import (
	"context"
	"fmt"
	"io"
)

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	fmt.Fprintln(stderr, "kinema put: not built yet")
	return 2
}
