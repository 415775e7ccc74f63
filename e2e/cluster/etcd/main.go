// Command etcd is the upstream etcd server, built from the Go module proxy at a pinned version
// because the test bed cannot download release tarballs.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
