// Package content holds Ringfence's detection content: template types (the
// schema of one kind of sensor event), capability manifests (what each agent
// version really supplies), bundles (a channel's versioned template
// instances), the compiler to a canonical, hashed form, the validator, the
// memory-safe indexed interpreter and preflight.
//
// The package exists to make the 19 July 2024 class of defect impossible to
// ship: a bundle is checked against the input arity of every agent version
// that will load it, and run through the same interpreter the agents use
// before anything is released. The interpreter never reads an input the
// event lacks; such a criterion is an error for its instance, never a crash.
package content
