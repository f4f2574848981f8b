// Package cli parses Kinema's command line and runs its subcommands. main
// only calls Run, so every command is testable in-process.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
)

const usage = `kinema: a self-hosted, KVS-compatible video stream cloud

Usage:
  kinema serve [flags]            run the server (see kinema serve -h)
  kinema put [flags] --stream NAME FILE
                                  stream a video file through PutMedia
  kinema admin GROUP VERB [flags]  accounts, users, keys, policies, roles and devices
                                  (see kinema admin -h)
  kinema timelapse [flags] --stream NAME --start T --end T --every 3s -o out.mp4
                                  make a time-lapse MP4 of a stream's archive
  kinema bench ingest [flags]     measure ingest with many paced cameras
  kinema bench images [flags]     measure GetImages against ffmpeg alone
  kinema events list|dead-letters|redrive|secret [flags]
                                  events of tagged fragments, dead letters, webhook secrets
  kinema bench ingest [flags]     measure ingest with many paced cameras
  kinema bench notify [flags]     measure notification delivery with many tagging cameras
  kinema version
`

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// Run runs one command and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr, os.Getenv)
	case "put":
		return runPut(ctx, args[1:], stdout, stderr, os.Getenv)
	case "admin":
		return runAdmin(ctx, args[1:], stdout, stderr, os.Getenv)
	case "timelapse":
		return runTimelapse(ctx, args[1:], stdout, stderr, os.Getenv)
	case "events":
		return runEvents(ctx, args[1:], stdout, stderr, os.Getenv)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "kinema", Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "kinema: unknown command %q\n\n%s", args[0], usage)
	return 2
}
