package detach

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Without systemd the process runs in a session of its own (a hangup of
// ours does not reach it), writing to the log.
func TestStartWithoutSystemd(t *testing.T) {
	t.Setenv("SVCNAT_NO_SYSTEMD", "1")
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	how, err := Start("test", []string{"/bin/sh", "-c", "echo started $$; exec sleep 30"}, log)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(log)
		if f := strings.Fields(string(b)); len(f) == 2 && f[0] == "started" {
			pid, _ = strconv.Atoi(f[1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing in the log; started as %s", how)
		}
	}
	defer unix.Kill(pid, unix.SIGKILL)
	if how != "process "+strconv.Itoa(pid)+" (log "+log+")" {
		t.Errorf("how: %q", how)
	}
	sid, err := unix.Getsid(pid)
	if err != nil || sid != pid {
		t.Fatalf("session of the detached process: %d, %v; want its own (%d)", sid, err, pid)
	}
}

// The log is opened without following a link: a state directory's
// watcher.log that is one does not have root append to its target.
func TestStartRefusesALinkedLog(t *testing.T) {
	t.Setenv("SVCNAT_NO_SYSTEMD", "1")
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "watcher.log")
	if err := os.Symlink(target, log); err != nil {
		t.Fatal(err)
	}
	if how, err := Start("test", []string{"/bin/sh", "-c", "echo started"}, log); err == nil {
		t.Fatalf("started (%s) with its log through a link", how)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "precious\n" {
		t.Fatalf("the link's target: %q, %v", b, err)
	}
}
