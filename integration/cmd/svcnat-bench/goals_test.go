package main

import (
	"strings"
	"testing"
)

// Each goal's line says whether it is met, at the bound too.
func TestGoalLinesSayMetOrNot(t *testing.T) {
	times := map[string]float64{"parse": 2, "floor": 2, "apply": 5, "save": 2, "plan": 4, "change": 6}
	sec := func(k string) float64 { return times[k] }
	var lines []string
	for _, be := range []string{"nft", "legacy"} {
		for _, g := range goals(be, sec) {
			lines = append(lines, g.String())
		}
	}
	want := []string{
		"nft: apply / (parse + floor) = 1.25 (goal <= 1.25): met",
		"nft: plan / (parse + save) = 1.00 (goal <= 1.25): met",
		"nft: change / plan = 1.50 (goal <= 1.5): met",
		"legacy: apply / (parse + floor) = 1.25 (goal <= 1.25): met",
		"legacy: plan / (parse + save) = 1.00 (goal <= 1.25): met",
		"legacy: change / (plan + 1.5 floor) = 0.86 (goal <= 1): met",
	}
	if got := strings.Join(lines, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("goal lines:\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	times["apply"], times["change"] = 5.2, 7
	if got := goals("nft", sec); got[0].String() != "nft: apply / (parse + floor) = 1.30 (goal <= 1.25): not met" ||
		got[2].String() != "nft: change / plan = 1.75 (goal <= 1.5): not met" {
		t.Errorf("goals over their bound: %v", got)
	}
}
