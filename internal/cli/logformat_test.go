package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// --log-format json writes durations as seconds, under keys ending in
// _seconds, as the metrics do; text keeps them as a person reads them.
func TestLogDurationsAsSeconds(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "json")
	if err != nil {
		t.Fatal(err)
	}
	log.With("event", "start").Info("applied", "took", 115*time.Millisecond, "interval", 30*time.Second, "generation", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if rec["took_seconds"] != 0.115 || rec["interval_seconds"] != 30.0 || rec["generation"] != 1.0 || rec["event"] != "start" {
		t.Errorf("json log line: %s", buf.String())
	}
	if _, ok := rec["took"]; ok {
		t.Errorf("json log line keeps took in nanoseconds: %s", buf.String())
	}

	buf.Reset()
	if log, err = newLogger(&buf, "text"); err != nil {
		t.Fatal(err)
	}
	log.Info("applied", "took", 115*time.Millisecond)
	if !strings.Contains(buf.String(), " took=115ms") {
		t.Errorf("text log line: %s", buf.String())
	}
}
