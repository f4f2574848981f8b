package images

import (
	"os"
	"syscall"
)

// fSetPipeSize is F_SETPIPE_SZ (linux/fcntl.h), which package syscall lacks.
const fSetPipeSize = 1031

// growPipe asks for a 1 MiB pipe buffer (the default maximum an
// unprivileged process may set) so that a camera's key frame goes to
// ffmpeg in one write instead of sixteen 64 KiB round trips. A refusal
// only costs speed.
func growPipe(f *os.File) {
	c, err := f.SyscallConn()
	if err != nil {
		return
	}
	c.Control(func(fd uintptr) { syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSize, 1<<20) })
}
