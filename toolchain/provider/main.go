// Command pulumi-resource-kubernetes serves the Pulumi Kubernetes provider.
//
// Upstream's main embeds schema-embed.json and terraform-mapping-embed.json,
// which are generated and git-ignored, so the module zip lacks them.
// toolchain/build.sh writes them into a build folder beside a copy of this
// file from the schema.json and terraform-mapping.json that the module zip
// does carry, stamped with the provider version; they are never committed.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
