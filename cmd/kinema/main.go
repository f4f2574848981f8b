// Command kinema is the Kinema server and its companion tools in one binary.
package main

import (
	"context"
	"os"

	"github.com/kinema/kinema/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
