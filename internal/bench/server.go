package bench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kinema/kinema/internal/archive/localfs"
)

// Server is `kinema serve` run as a child process for a benchmark.
type Server struct {
	cmd     *exec.Cmd
	URL     string
	DataDir string
}

// StartServer runs the current executable as `kinema serve` on a free port.
func StartServer(dataDir string, key, secret string, extra ...string) (*Server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", addr, "--log-level", "error"}, extra...)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "KINEMA_ACCESS_KEY_ID="+key, "KINEMA_SECRET_ACCESS_KEY="+secret)
	if os.Getenv("KINEMA_SERVER_KEY") == "" {
		// A PostgreSQL index wants one (shared by a cluster's nodes); the
		// benchmark's throw-away server gets a throw-away key.
		b := make([]byte, 32)
		rand.Read(b)
		cmd.Env = append(cmd.Env, "KINEMA_SERVER_KEY="+hex.EncodeToString(b))
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{cmd: cmd, URL: "http://" + addr, DataDir: dataDir}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return s, nil
		}
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("kinema serve did not start on %s", addr)
}

// CPU returns the server's user+system CPU time so far.
func (s *Server) CPU() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are 14 and 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// PeakRSS returns the server's peak resident memory (VmHWM).
func (s *Server) PeakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Stop ends the server gracefully (the index checkpoints its WAL on close).
func (s *Server) Stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	return s.cmd.Wait()
}

// DiskUsage reports bytes on disk of the segment files and of the index.
func DiskUsage(dataDir string) (media, index int64, err error) {
	media, err = localfs.DiskUsage(filepath.Join(dataDir, "media"))
	for _, name := range []string{"index.db", "index.db-wal"} {
		if fi, e := os.Stat(filepath.Join(dataDir, name)); e == nil {
			index += fi.Size()
		}
	}
	return media, index, err
}
