package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a PostgreSQL instance of one test's own (StartServer): a test
// may restart or stop it without disturbing the tests that share the
// machine's server.
type Server struct {
	bin, dir, data string
	port           int
	cred           *syscall.Credential // set when the test runs as root
	mu             sync.Mutex
}

// StartServer initializes a database cluster in a temporary directory and
// runs it on a free loopback port until the test ends. It uses the
// PostgreSQL binaries of the system (initdb, pg_ctl: Debian's postgresql
// package, which scripts/setup.sh installs; KINEMA_TEST_PG_BIN names
// another directory). PostgreSQL refuses to run as root, so a test running
// as root runs the server as the operating-system user postgres (which the
// package creates).
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatalf("PostgreSQL's server binaries are required by this test (scripts/setup.sh installs them): %v", err)
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, this test runs PostgreSQL as the user postgres, which does not exist (the postgresql package creates it): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parents are private to the test's user, and the
	// server may run as another.
	if s.dir, err = os.MkdirTemp("", "kinema-pgtest-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(s.dir) })
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	s.data = filepath.Join(s.dir, "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	// --no-sync: the cluster lives as long as the test; the server itself
	// keeps fsync on, as a real one does.
	if out, err := s.run("initdb", "-D", s.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nmax_connections = 50\n", s.port, s.dir)
	f, err := os.OpenFile(filepath.Join(s.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.run("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop") })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// DSN is a URL for the server's database postgres.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Restart is `pg_ctl restart -m fast`: the server ends every session
// (clients read "terminating connection due to administrator command"),
// checkpoints, and starts again on the same port. It returns once the
// server accepts connections. Restart, Stop and Start may be called from
// any goroutine (a fault injected while a client streams).
func (s *Server) Restart() error {
	return s.ctl("-l", filepath.Join(s.dir, "log"), "-m", "fast", "-w", "restart")
}

// Stop shuts the server down the fast way and returns when it is gone.
func (s *Server) Stop() error {
	return s.ctl("-m", "fast", "-w", "stop")
}

// Start starts the stopped server and returns once it accepts connections.
func (s *Server) Start() error {
	return s.ctl("-l", filepath.Join(s.dir, "log"), "-w", "start")
}

func (s *Server) ctl(args ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if out, err := s.run("pg_ctl", append([]string{"-D", s.data}, args...)...); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, log)
	}
	return nil
}

// run runs one of the PostgreSQL binaries as the server's user.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	// pg_ctl waits (-w) for at most a minute by default.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
		cmd.Env = append(cmd.Env, "HOME="+s.dir, "USER=postgres", "LOGNAME=postgres")
	}
	// The server that pg_ctl (re)starts writes to its log (-l), not to
	// this output; should it hold the output open anyway, pg_ctl's own exit
	// is what counts.
	cmd.WaitDelay = time.Second
	return cmd.CombinedOutput()
}

// binDir finds initdb and pg_ctl: KINEMA_TEST_PG_BIN, else the newest
// /usr/lib/postgresql/N/bin (Debian keeps them off PATH), else PATH.
func binDir() (string, error) {
	if d := os.Getenv("KINEMA_TEST_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i], nil
		}
	}
	p, err := exec.LookPath("pg_ctl")
	if err != nil {
		return "", fmt.Errorf("no pg_ctl in /usr/lib/postgresql/*/bin or on PATH")
	}
	return filepath.Dir(p), nil
}
