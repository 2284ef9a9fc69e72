package rtnl

import (
	"os/exec"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// testbedDelete removes a namespace early; its cleanup then finds it gone
// and reports that, so recreate an empty one under the same name.
func testbedDelete(n *testbed.NS) ([]byte, error) {
	out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput()
	if err != nil {
		return out, err
	}
	return exec.Command("ip", "netns", "add", n.Name).CombinedOutput()
}
