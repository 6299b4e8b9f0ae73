// Package buildinfo says which svcnat this is: the version stamped at
// build time (-ldflags "-X github.com/svcnat/svcnat/internal/buildinfo.version=v1.2.3",
// as make build and make package do), else what the Go toolchain recorded:
// the module version of `go install ...@v1.2.3`, or the VCS revision of a
// checkout, marked dirty when it had uncommitted changes.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// version is set by the linker.
var version string

// Info describes the running binary.
type Info struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"` // the revision's commit time
	Dirty    bool   `json:"dirty,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// Read returns the running binary's Info.
func Read() Info {
	i := Info{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Revision = s.Value
			case "vcs.time":
				i.Time = s.Value
			case "vcs.modified":
				i.Dirty = s.Value == "true"
			}
		}
	}
	switch {
	case i.Version != "":
	case ok && bi.Main.Version != "" && bi.Main.Version != "(devel)":
		i.Version = bi.Main.Version
	case i.Revision != "":
		i.Version = "devel-" + short(i.Revision)
		if i.Dirty {
			i.Version += "-dirty"
		}
	default:
		i.Version = "devel"
	}
	return i
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
