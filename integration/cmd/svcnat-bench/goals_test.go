package main

import (
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// measured is a run's measurements from seconds by row key, lines written for
// the change and peak memory in MiB, the same for every backend.
func measured(secs map[string]float64, lines int, mib int64, backends ...backend.Name) map[backend.Name]map[string]measurement {
	res := map[backend.Name]map[string]measurement{}
	for _, be := range backends {
		m := map[string]measurement{}
		for k, s := range secs {
			m[k] = measurement{took: time.Duration(s * float64(time.Second)), rss: mib << 10}
		}
		c := m["change"]
		c.lines = lines
		m["change"] = c
		res[be] = m
	}
	return res
}

func goalLines(be backend.Name, res map[backend.Name]map[string]measurement) []string {
	var lines []string
	for _, g := range goals(be, res) {
		lines = append(lines, g.String())
	}
	return lines
}

// Each goal's line says whether it is met, at the bound too.
func TestGoalLinesSayMetOrNot(t *testing.T) {
	times := map[string]float64{"parse": 2, "floor": 2, "apply": 5, "save": 2, "plan": 4, "change": 6}
	res := measured(times, 19, 255, iptablesNFT, iptablesLegacy)
	var lines []string
	for _, be := range []backend.Name{iptablesNFT, iptablesLegacy} {
		lines = append(lines, goalLines(be, res)...)
	}
	want := []string{
		"iptables-nft: apply / (parse + floor) = 1.25 (goal <= 1.25): met",
		"iptables-nft: plan / (parse + save) = 1.00 (goal <= 1.25): met",
		"iptables-nft: change / plan = 1.50 (goal <= 1.5): met",
		"iptables-nft: lines written for the change = 19 (goal < 50): met",
		"iptables-nft: peak memory of plan / apply / change (MiB) = 255 / 255 / 255 (goal < 256): met",
		"iptables-legacy: apply / (parse + floor) = 1.25 (goal <= 1.25): met",
		"iptables-legacy: plan / (parse + save) = 1.00 (goal <= 1.25): met",
		"iptables-legacy: change / (plan + 1.5 floor) = 0.86 (goal <= 1): met",
		"iptables-legacy: lines written for the change = 19 (goal < 50): met",
		"iptables-legacy: peak memory of plan / apply / change (MiB) = 255 / 255 / 255 (goal < 256): met",
	}
	if got := strings.Join(lines, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("goal lines:\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	times["apply"], times["change"] = 5.2, 7
	res = measured(times, 50, 256, iptablesNFT)
	got := goalLines(iptablesNFT, res)
	for i, want := range map[int]string{
		0: "iptables-nft: apply / (parse + floor) = 1.30 (goal <= 1.25): not met",
		2: "iptables-nft: change / plan = 1.75 (goal <= 1.5): not met",
		3: "iptables-nft: lines written for the change = 50 (goal < 50): not met",
		4: "iptables-nft: peak memory of plan / apply / change (MiB) = 256 / 256 / 256 (goal < 256): not met",
	} {
		if got[i] != want {
			t.Errorf("goal over its bound: %q, want %q", got[i], want)
		}
	}
}

// nftables' goals: its apply is held to iptables-nft's of the same run
// (not measured when the run has none), its change to 1.1 plans and
// fewer than 20 lines.
func TestNFTablesGoals(t *testing.T) {
	times := map[string]float64{"parse": 2, "floor": 2, "apply": 5, "save": 2, "plan": 4, "change": 4.4}
	res := measured(times, 19, 100, kernel.NFTables, iptablesNFT)
	res[iptablesNFT]["apply"] = measurement{took: 10 * time.Second}
	want := []string{
		"nftables: apply / iptables-nft apply = 0.50 (goal <= 0.5): met",
		"nftables: apply / (parse + floor) = 1.25 (goal <= 1.25): met",
		"nftables: plan / (parse + save) = 1.00 (goal <= 1.25): met",
		"nftables: change / plan = 1.10 (goal <= 1.1): met",
		"nftables: configuration edit to verified kernel, by a full pass as reconcile takes it (s) = 4.40 (goal <= 0.1): not met",
		"nftables: lines written for the change = 19 (goal < 20): met",
		"nftables: peak memory of plan / apply / change (MiB) = 100 / 100 / 100 (goal < 256): met",
	}
	if got := goalLines(kernel.NFTables, res); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("goal lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	times["change"] = 4.5
	res = measured(times, 20, 100, kernel.NFTables)
	got := goalLines(kernel.NFTables, res)
	for i, want := range map[int]string{
		0: "nftables: apply / iptables-nft apply (goal <= 0.5): not measured, run iptables-nft too",
		3: "nftables: change / plan = 1.12 (goal <= 1.1): not met",
		5: "nftables: lines written for the change = 20 (goal < 20): not met",
	} {
		if got[i] != want {
			t.Errorf("goal: %q, want %q", got[i], want)
		}
	}
}

// -backends takes the canonical names and the old aliases, each once,
// and not auto.
func TestParseBackends(t *testing.T) {
	got, err := parseBackends("nft,iptables-legacy,nftables")
	if err != nil || len(got) != 3 || got[0] != iptablesNFT || got[1] != iptablesLegacy || got[2] != kernel.NFTables {
		t.Errorf("nft,iptables-legacy,nftables: %v, %v", got, err)
	}
	for _, bad := range []string{"nft,iptables-nft", "auto", "", "nft,ipvs"} {
		if _, err := parseBackends(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
