package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.Version == "" || i.Go != runtime.Version() || !strings.Contains(i.Platform, "/") {
		t.Fatalf("%+v", i)
	}
	version = "v9.9.9"
	defer func() { version = "" }()
	if Read().Version != "v9.9.9" {
		t.Fatal("the stamped version does not win")
	}
}
