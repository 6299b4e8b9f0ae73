package vocab

import (
	"testing"
)

// Hashes checked against real kube-proxy dumps and upstream tests.
func TestChainNameHashes(t *testing.T) {
	kube := For(KubePrefix)
	if got := kube.PortChains("default/nginx", "TCP").SVC; got != "KUBE-SVC-2CMXP7HKUVJN7L6M" {
		t.Errorf("default/nginx SVC = %s", got)
	}
	for ip, want := range map[string]string{
		"10.244.0.20": "KUBE-SEP-BRZDTZFF2SFWJV4H", "10.244.0.21": "KUBE-SEP-OI2S57TQ5WH5FOMC", "10.244.0.22": "KUBE-SEP-473MVOWGJMIYYUKK",
	} {
		if got := kube.EndpointChain("default/nginx", "TCP", ip+":80"); got != want {
			t.Errorf("SEP %s = %s, want %s", ip, got, want)
		}
	}
	if got := kube.PortChains(ServicePortName("default/kubernetes", "https"), "tcp").SVC; got != "KUBE-SVC-NPX46M4PTMTKRN6Y" {
		t.Errorf("default/kubernetes:https SVC = %s", got)
	}
	if got := For("SVCNAT").PortChains("ns5/svc5:p80", "TCP").FW; got != "SVCNAT-FW-NUKIZ6OKUXPJNT4C" {
		t.Errorf("ns5/svc5:p80 FW = %s", got)
	}
	if got := ServicePortName("ns5/svc5", ""); got != "ns5/svc5" {
		t.Errorf("unnamed port name = %q", got)
	}
}

func TestKindOf(t *testing.T) {
	v := For("SN")
	for chain, want := range map[string]Kind{
		"SN-SERVICES": Services, "SN-EXTERNAL-SERVICES": ExternalServices, "SN-MARK-MASQ": MarkMasq,
		"SN-SVC-2CMXP7HKUVJN7L6M": SVC, "SN-SEP-BRZDTZFF2SFWJV4H": SEP, "SN-FW-X": FW,
		"SN-OTHER": "", "KUBE-SERVICES": "", "PREROUTING": "", "SN-SVCX": "",
	} {
		if got := v.KindOf(chain); got != want {
			t.Errorf("KindOf(%s) = %q, want %q", chain, got, want)
		}
	}
	if !SVL.PerService() || NodePorts.PerService() {
		t.Error("PerService misclassifies")
	}
}

// Every comment the vocabulary writes reads back as what it said.
func TestCommentsRoundTrip(t *testing.T) {
	for role := range roleFormats {
		c := Comment(role, "ns1/svc1:p80", "SN-FW-X")
		got := ParseComment(c)
		if got.Role != role || got.Service != "ns1/svc1" || got.Port != "p80" || got.Shared {
			t.Errorf("ParseComment(%q) = %+v, want role %d of ns1/svc1:p80", c, got, role)
		}
	}
	for _, prefix := range []string{KubePrefix, "SVCNAT"} {
		for role := range sharedFormats {
			if c := For(prefix).Shared(role); !ParseComment(c).Shared {
				t.Errorf("%q does not read back as shared", c)
			}
		}
	}
	for c, want := range map[string]string{
		"ns1/svc1:p80 cluster IP": "ns1/svc1",
		"ns1/svc1:p80":            "ns1/svc1",
		"masquerade traffic for ns4/svc4:p80 external destinations":            "ns4/svc4",
		"other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL": "ns5/svc5",
		"ns2/svc2 -> [fd00::1]:80":                                             "ns2/svc2",
		"kubernetes service portals":                                           "",
		"kubernetes cluster IP":                                                "kubernetes",
		"an operator's note":                                                   "",
	} {
		if got := CommentService(c); got != want {
			t.Errorf("CommentService(%q) = %q, want %q", c, got, want)
		}
	}
	if p := ParseComment("ns2/svc2 -> [fd00::1]:80"); p.Role != EndpointChoice || p.Extra != "[fd00::1]:80" {
		t.Errorf("endpoint comment: %+v", p)
	}
}
