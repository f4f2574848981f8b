package cli

import (
	"context"
	"io"

	"github.com/kinema/kinema/internal/producer"
)

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	return producer.RunPut(ctx, args, stdout, stderr, env)
}
