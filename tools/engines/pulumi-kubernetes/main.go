// pulumi-resource-kubernetes from the published provider module: the module's own cmd package embeds two files its
// generate.go writes and git ignores (so they are missing from the module zip). tools/build-engines writes them here
// from the module's schema.json (with the version stamped in, as generate.go does) and terraform-mapping.json.
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
