package bench

import (
	"fmt"
	"os"
	"sort"
	"syscall"
	"time"
)

// Baseline is what the disk alone costs, measured in the same run as the
// benchmark so figures can be read as ratios on a noisy machine: appending
// fragment-sized writes to one file and fdatasyncing after each.
type Baseline struct {
	Bytes      int64
	CPU        time.Duration // this process's user+system CPU for the writes
	Wall       time.Duration
	SyncP50    time.Duration
	SyncP99    time.Duration
	writeBytes int
}

// MeasureBaseline writes total bytes in chunk-sized appends to a file in dir.
func MeasureBaseline(dir string, total int64, chunk int) (*Baseline, error) {
	f, err := os.CreateTemp(dir, "baseline-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var syncs []time.Duration
	cpu0 := selfCPU()
	start := time.Now()
	var written int64
	for written < total {
		if _, err := f.Write(buf); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
		syncs = append(syncs, time.Since(t0))
		written += int64(chunk)
	}
	b := &Baseline{Bytes: written, CPU: selfCPU() - cpu0, Wall: time.Since(start), writeBytes: chunk}
	sort.Slice(syncs, func(i, j int) bool { return syncs[i] < syncs[j] })
	b.SyncP50, b.SyncP99 = syncs[len(syncs)/2], syncs[len(syncs)*99/100]
	return b, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPUPerGB is the baseline's CPU-seconds per GB written.
func (b *Baseline) CPUPerGB() float64 { return b.CPU.Seconds() / (float64(b.Bytes) / 1e9) }

func (b *Baseline) String() string {
	return fmt.Sprintf("baseline (same disk, same run): append %d KB + fdatasync each: %.1f CPU-seconds per GB, %.0f MB/s, fdatasync p50 %v p99 %v",
		b.writeBytes>>10, b.CPUPerGB(), float64(b.Bytes)/1e6/b.Wall.Seconds(), b.SyncP50.Round(time.Microsecond), b.SyncP99.Round(time.Microsecond))
}
