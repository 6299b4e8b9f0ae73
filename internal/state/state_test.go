package state

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openTemp(t *testing.T) *Dir {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "svcnat"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func load(t *testing.T, d *Dir) *State {
	t.Helper()
	st, err := d.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// apply does what svcnat apply does with the state: commit.
func apply(t *testing.T, d *Dir, gen int64) *State {
	t.Helper()
	st := load(t, d)
	setNext(st, gen)
	if err := d.Commit(st, rulesFor(gen)); err != nil {
		t.Fatal(err)
	}
	return st
}

func setNext(st *State, gen int64) {
	st.Generation = gen
	st.ConfigDigest = Digest([]byte{byte(gen)})
	st.RulesDigest = Digest([]byte("rules"), []byte{byte(gen)})
	st.Backend = "iptables-nft"
	st.AppliedAt = time.Date(2025, 1, 2, 10, 2, 3, int(gen), time.UTC)
}

func rulesFor(gen int64) map[string]io.WriterTo {
	return map[string]io.WriterTo{
		"ipv4": strings.NewReader("*nat\n:KUBE-SERVICES - [0:0]\n# gen " + string(rune('0'+gen)) + "\nCOMMIT\n"),
		"ipv6": strings.NewReader("*nat\nCOMMIT\n"),
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestLoadEmpty(t *testing.T) {
	d := openTemp(t)
	st := load(t, d)
	if !reflect.DeepEqual(st, &State{}) {
		t.Errorf("Load of a new directory = %+v, want the zero State", st)
	}
	if _, err := st.Previous(); !errors.Is(err, ErrNoPrevious) {
		t.Errorf("Previous = %v, want ErrNoPrevious", err)
	}
	fi, err := os.Stat(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestRoundTrip(t *testing.T) {
	d := openTemp(t)
	apply(t, d, 1)
	committed := apply(t, d, 2)

	st := load(t, d)
	if !reflect.DeepEqual(st, committed) {
		t.Errorf("Load = %+v\nwant  %+v", st, committed)
	}
	if st.Version != FormatVersion || st.Generation != 2 || len(st.Generations) != 2 {
		t.Fatalf("state = %+v", st)
	}
	want := GenerationInfo{
		Generation: 2, ConfigDigest: st.ConfigDigest, RulesDigest: st.RulesDigest,
		Backend: "iptables-nft", AppliedAt: st.AppliedAt,
		Rules: []string{"ipv4", "ipv6"},
	}
	if !reflect.DeepEqual(st.Generations[1], want) {
		t.Errorf("current generation = %+v\nwant %+v", st.Generations[1], want)
	}
	for fam, src := range rulesFor(2) {
		var data strings.Builder
		src.WriteTo(&data)
		got, err := d.ReadGeneration(2, fam)
		if err != nil || string(got) != data.String() {
			t.Errorf("ReadGeneration(2, %s) = %q, %v; want %q", fam, got, err, data.String())
		}
	}
	prev, err := st.Previous()
	if err != nil || prev.Generation != 1 {
		t.Errorf("Previous = %+v, %v; want generation 1", prev, err)
	}
	if _, err := d.ReadGeneration(9, "ipv4"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadGeneration of a missing generation = %v, want fs.ErrNotExist", err)
	}
	fi, err := os.Stat(filepath.Join(d.Path(), "state.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json: %v, %v; want mode 0600", fi, err)
	}
}

// Older svcnat saved the live owned rules before each apply in backups/
// and recorded them with each generation; nothing read them. Such a state
// file still loads, and the next commit removes the backups and their
// directory, keeping what is not ours.
func TestOldBackupsRemoved(t *testing.T) {
	d := openTemp(t)
	apply(t, d, 1)
	apply(t, d, 2)
	p := filepath.Join(d.Path(), "state.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.ReplaceAll(string(b), `"rules": [`, `"backups": ["ipv4", "ipv6"], "rules": [`)
	if old == string(b) {
		t.Fatalf("no generation records rules:\n%s", b)
	}
	if err := os.WriteFile(p, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	backups := filepath.Join(d.Path(), "backups")
	if err := os.Mkdir(backups, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"1.ipv4.rules", "1.ipv6.rules", "2.ipv4.rules", "2.ipv6.rules"} {
		if err := os.WriteFile(filepath.Join(backups, name), []byte("*nat\nCOMMIT\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if st := load(t, d); st.Generation != 2 || len(st.Generations) != 2 {
		t.Fatalf("state of older svcnat: %+v", st)
	}
	apply(t, d, 3)
	if exists(backups) {
		t.Errorf("%s left behind", backups)
	}
	if b, err := os.ReadFile(p); err != nil || strings.Contains(string(b), "backups") {
		t.Errorf("state.json after a commit: %v\n%s", err, b)
	}

	// An operator's file keeps the directory; ours go.
	if err := os.Mkdir(backups, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"3.ipv4.rules", "NOTES"} {
		if err := os.WriteFile(filepath.Join(backups, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	apply(t, d, 4)
	if exists(filepath.Join(backups, "3.ipv4.rules")) || !exists(filepath.Join(backups, "NOTES")) {
		t.Errorf("backups/ after a commit: want NOTES alone")
	}
}

func TestCommitRefusesOldGeneration(t *testing.T) {
	d := openTemp(t)
	apply(t, d, 1)
	st := load(t, d)
	for _, gen := range []int64{0, 1} {
		setNext(st, gen)
		if err := d.Commit(st, rulesFor(gen)); err == nil {
			t.Errorf("Commit of generation %d after 1 succeeded", gen)
		}
	}
	if got := load(t, d); got.Generation != 1 {
		t.Errorf("generation %d after refused commits, want 1", got.Generation)
	}
}

func TestBadFamily(t *testing.T) {
	d := openTemp(t)
	for _, fam := range []string{"", "../x", "IPv4", "a.b"} {
		if _, err := d.ReadGeneration(1, fam); err == nil || !strings.Contains(err.Error(), "invalid family") {
			t.Errorf("ReadGeneration with family %q: %v, want an invalid family", fam, err)
		}
	}
	st := &State{}
	setNext(st, 1)
	if err := d.Commit(st, map[string]io.WriterTo{"../../etc/x": strings.NewReader("")}); err == nil {
		t.Error("Commit with a path as family succeeded")
	}
}

func TestLoadNewerVersion(t *testing.T) {
	d := openTemp(t)
	if err := WriteFileAtomic(filepath.Join(d.Path(), "state.json"), []byte(`{"version": 99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("Load of a newer state file = %v, want a version error", err)
	}
}

func TestPrune(t *testing.T) {
	d := openTemp(t)
	d.Keep = 3
	for gen := int64(1); gen <= 5; gen++ {
		apply(t, d, gen)
	}
	st := load(t, d)
	var gens []int64
	for _, g := range st.Generations {
		gens = append(gens, g.Generation)
	}
	if !reflect.DeepEqual(gens, []int64{3, 4, 5}) {
		t.Errorf("kept generations %v, want [3 4 5]", gens)
	}
	for gen := int64(1); gen <= 5; gen++ {
		p, _ := d.filePath("generations", gen, "ipv4")
		if want := gen >= 3; exists(p) != want {
			t.Errorf("%s exists = %v, want %v", p, !want, want)
		}
	}
}

// TestCrash stops Commit between its steps, as a crash would, and checks that
// the state is always the old or the new one and that leftovers are ignored
// and later removed.
func TestCrash(t *testing.T) {
	d := openTemp(t)
	old := apply(t, d, 1)
	crash := func(at string) {
		testHook = func(step string) error {
			if step == at {
				return errors.New("crash at " + step)
			}
			return nil
		}
	}
	t.Cleanup(func() { testHook = nil })

	// Leftovers of earlier crashes: a temp file of a state write, a
	// half-written generation and a backup older svcnat wrote before an
	// apply that never committed.
	tmp := filepath.Join(d.Path(), tempPrefix+"state.json-123")
	half := filepath.Join(d.Path(), "generations", "7.ipv4.rules")
	orphan := filepath.Join(d.Path(), "backups", "7.ipv4.rules")
	notes := filepath.Join(d.Path(), "generations", "NOTES")
	if err := os.Mkdir(filepath.Dir(orphan), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tmp, half, orphan, notes} {
		if err := os.WriteFile(p, []byte(`{"version":1,"generation":7,"gar`), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Crash after the rules files, before the state file: old state.
	crash("generations written")
	st := load(t, d)
	setNext(st, 2)
	if err := d.Commit(st, rulesFor(2)); err == nil {
		t.Fatal("Commit with a crash succeeded")
	}
	if got := load(t, d); !reflect.DeepEqual(got, old) {
		t.Errorf("after a crash before the commit point: %+v\nwant the old state %+v", got, old)
	}

	// Crash after the state file, before cleanup: new state.
	crash("state written")
	st = load(t, d)
	setNext(st, 2)
	if err := d.Commit(st, rulesFor(2)); err == nil {
		t.Fatal("Commit with a crash succeeded")
	}
	if got := load(t, d); got.Generation != 2 || !reflect.DeepEqual(got, st) {
		t.Errorf("after a crash past the commit point: %+v\nwant the new state %+v", got, st)
	}
	for _, p := range []string{tmp, half, orphan} {
		if !exists(p) {
			t.Errorf("%s removed by a crashed commit", p)
		}
	}

	// The next commit converges and cleans up.
	testHook = nil
	apply(t, d, 3)
	for _, p := range []string{tmp, half, orphan, filepath.Dir(orphan)} {
		if exists(p) {
			t.Errorf("leftover %s not removed", p)
		}
	}
	if !exists(notes) {
		t.Errorf("%s is not ours but was removed", notes)
	}
	if got := load(t, d); got.Generation != 3 || len(got.Generations) != 3 {
		t.Errorf("after recovery: %+v", got)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "plan.json")
	for _, data := range []string{"first", "second"} {
		if err := WriteFileAtomic(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != data {
			t.Errorf("read %q, %v; want %q", got, err, data)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v; want 0640", fi.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the written one", len(entries))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Error("WriteFileAtomic into a missing directory succeeded")
	}
}

func TestDigest(t *testing.T) {
	a := Digest([]byte("ab"), []byte("c"))
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+64 {
		t.Errorf("Digest = %q", a)
	}
	if a != Digest([]byte("ab"), []byte("c")) {
		t.Error("Digest is not deterministic")
	}
	if a == Digest([]byte("a"), []byte("bc")) {
		t.Error("moving bytes between parts does not change the digest")
	}
}

// An undone apply stays recorded through the revert's own Commit and a
// plain Save, and goes with the first Commit that is no revert; a state
// file from before Undone (no "undone" key) loads with none.
func TestUndone(t *testing.T) {
	d := openTemp(t)
	apply(t, d, 1)
	st := load(t, d)
	st.RecordRevert(Undone{Generation: 1, Reason: "not confirmed within 1m0s", At: time.Now().UTC()})
	setNext(st, 2)
	if err := d.Commit(st, rulesFor(2)); err != nil {
		t.Fatal(err)
	}
	st = load(t, d)
	g1, _ := st.Info(1)
	if u := st.Undone; u == nil || u.Generation != 1 || u.ConfigDigest != g1.ConfigDigest || u.RulesDigest != g1.RulesDigest || g1.Reverted != u.Reason {
		t.Fatalf("after the revert's commit: undone %+v, generation 1 %+v", st.Undone, g1)
	}
	if g2, _ := st.Info(2); g2.RevertOf != 1 {
		t.Fatalf("the revert's generation: %+v", g2)
	}
	// An apply that recorded no generation: only Undone says it.
	st.RecordRevert(Undone{ConfigDigest: "sha256:c", RulesDigest: "sha256:r", Reason: "rolled back: probe failed"})
	if err := d.Save(st); err != nil {
		t.Fatal(err)
	}
	if u := load(t, d).Undone; u == nil || u.Generation != 0 || u.ConfigDigest != "sha256:c" {
		t.Fatalf("after a save: %+v", u)
	}
	apply(t, d, 3)
	if u := load(t, d).Undone; u != nil {
		t.Fatalf("an apply kept the undone record: %+v", u)
	}

	old := `{"version": 1, "generation": 1, "applied_at": "2025-01-02T10:02:03Z", "generations": [{"generation": 1, "applied_at": "2025-01-02T10:02:03Z", "reverted": "not confirmed within 1m0s"}]}`
	if err := WriteFileAtomic(d.statePath(), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := load(t, d); st.Undone != nil || st.Generations[0].Reverted == "" {
		t.Fatalf("a state file from before Undone: %+v", st)
	}
}
