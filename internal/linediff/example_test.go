package linediff_test

import (
	"fmt"

	"github.com/svcnat/svcnat/internal/linediff"
)

func ExampleUnified() {
	fmt.Print(linediff.Unified("conf/web.hcl",
		"service \"default/web\" {\n  port {\nport = 80\n  }\n}\n",
		"service \"default/web\" {\n  port {\n    port = 80\n  }\n}"))
	// Output:
	// --- a/conf/web.hcl
	// +++ b/conf/web.hcl
	// @@ -1,5 +1,5 @@
	//  service "default/web" {
	//    port {
	// -port = 80
	// +    port = 80
	//    }
	// -}
	// +}
	// \ No newline at end of file
}
