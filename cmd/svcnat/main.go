package main
import (
 _ "github.com/urfave/cli/v2"
 _ "github.com/hashicorp/hcl/v2"
 _ "github.com/hashicorp/hcl/v2/gohcl"
 _ "github.com/hashicorp/hcl/v2/hclwrite"
 _ "github.com/coreos/go-iptables/iptables"
 _ "github.com/sergi/go-diff/diffmatchpatch"
 _ "github.com/vishvananda/netns"
 _ "golang.org/x/term"
 _ "golang.org/x/sys/unix"
)
func main(){}
