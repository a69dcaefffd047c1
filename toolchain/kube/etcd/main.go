// Command etcd is etcd's own server entry point. The root etcd module replaces
// its submodules with local paths, so it cannot be built from the proxy
// directly; etcdmain is the whole program.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
