package rules

import "testing"

func TestSpec(t *testing.T) {
	rs, err := ParseSaveString(IPv4, `*nat
:KUBE-SVC-X - [0:0]
-A KUBE-SVC-X ! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-X -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.50000000000 -g KUBE-SEP-Y
-A KUBE-SVC-X -p tcp -m tcp -j DNAT --to-destination 10.180.0.1:80
COMMIT
`)
	if err != nil {
		t.Fatal(err)
	}
	c := rs.Tables[0].Chains[0]
	s, err := ParseSpec(c.Rules[0])
	if err != nil {
		t.Fatal(err)
	}
	if !s.Source.Negated || s.Source.Value() != "10.0.0.0/8" || s.Destination.Value() != "172.30.0.41/32" || s.Protocol.Value() != "tcp" ||
		len(s.Matches) != 2 || s.Matches[1].Module != "tcp" || s.Target != "KUBE-MARK-MASQ" || s.Goto {
		t.Fatalf("%+v", s)
	}
	if o, ok := s.Matches[1].Option("--dport"); !ok || o.Value() != "80" {
		t.Fatalf("--dport: %+v", o)
	}
	s, _ = ParseSpec(c.Rules[1])
	if p, ok := s.Matches[1].Option("--probability"); !ok || p.Value() != "0.50000000000" || !s.Goto || s.Target != "KUBE-SEP-Y" {
		t.Fatalf("%+v", s)
	}
	s, _ = ParseSpec(c.Rules[2])
	if d, ok := s.TargetOption("--to-destination"); !ok || d.Value() != "10.180.0.1:80" || s.Target != "DNAT" {
		t.Fatalf("%+v", s)
	}
}
