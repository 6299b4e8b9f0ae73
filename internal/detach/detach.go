// Package detach starts processes that outlive the command that started
// them, its terminal and its session: svcnat's revert watcher must keep a
// deadline after an SSH session that ran `svcnat apply` is cut, or the
// apply process is killed. It knows nothing of svcnat.
package detach

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// Start starts argv (argv[0] a path) so that it survives this process:
//
//   - as a transient systemd service (systemd-run --unit NAME), when
//     systemd runs the host: outside the session's scope, so neither a
//     hangup nor the end of the session stops it, and journald keeps its
//     output;
//   - else as a process in a session of its own (setsid), its output
//     appended to logPath, not waited for: a hangup of the caller's
//     session or a SIGKILL of the caller does not reach it, and init
//     adopts it.
//
// It returns how the process runs, for the record.
func Start(name string, argv []string, logPath string) (string, error) {
	if Systemd() {
		run, err := exec.LookPath("systemd-run")
		if err == nil {
			// The unit starts from systemd's environment: the caller's
			// PATH keeps finding the same iptables binaries.
			args := append([]string{"--unit", name, "--collect", "--quiet", "--description", "svcnat: " + name,
				"--setenv", "PATH=" + os.Getenv("PATH"), "--"}, argv...)
			if out, err := exec.Command(run, args...).CombinedOutput(); err != nil {
				return "", fmt.Errorf("systemd-run: %w: %s", err, out)
			}
			return "systemd unit " + name, nil
		}
	}
	// The log is in svcnat's state directory, and root appends to it: a
	// link there (or a FIFO, which would block the open) is refused, not
	// followed.
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return "", fmt.Errorf("opening the watcher's log: %s is a symbolic link, which svcnat does not follow", logPath)
	}
	if err != nil {
		return "", fmt.Errorf("opening the watcher's log: %w", err)
	}
	defer log.Close()
	if fi, err := log.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("opening the watcher's log: %s is not a regular file", logPath)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	return fmt.Sprintf("process %d (log %s)", pid, logPath), nil
}

// Systemd reports whether systemd is the init system here, as
// sd_booted(3) tells: /run/systemd/system exists. SVCNAT_NO_SYSTEMD set to
// anything says no, for hosts whose systemd is not to be used.
func Systemd() bool {
	if os.Getenv("SVCNAT_NO_SYSTEMD") != "" {
		return false
	}
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}
