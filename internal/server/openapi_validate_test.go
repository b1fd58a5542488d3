package server_test

import (
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The OpenAPI description is valid OpenAPI 3 for a real validator
// (kin-openapi), not only for this package's partial reading of it: an
// unquoted comma in a YAML flow mapping, for one, splits a description or
// an example into a bogus property that the partial reading never sees.
func TestOpenAPIIsValid(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(openAPIPath)
	if err != nil {
		t.Fatalf("load %s: %v", openAPIPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not valid OpenAPI: %v", openAPIPath, err)
	}
}
