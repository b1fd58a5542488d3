// Package agent is the endpoint side of Ringfence (ringfence-agent). The
// agent keeps content out of the host's critical path and returns a device
// to last-known-good content by itself: content runs in a supervised
// user-mode worker, never in the host's boot path, and when new content
// crashes the worker or the host the agent goes back to the newest version
// it confirmed healthy, with no server and no human involved.
//
// This file set is the agent's on-disk state and its recovery decisions:
//
//   - journal.json, the apply journal: per channel the active and
//     last-known-good versions and their A/B slots, the activation on
//     probation, and the versions refused after a local revert. It is
//     replaced atomically and durably on every change, so a power cut at
//     any point leaves either the old or the new journal.
//   - events.jsonl, the event queue: what happened on the device, numbered
//     for the server's exactly-once ingest and kept until the server
//     acknowledges it.
//   - recovery.go, pure decisions over the journal (boot loops, crash
//     loops, probation, which offers to take). They take the time as an
//     argument and do no I/O, so they are tested as tables and the
//     simulator can run them too.
//
// The ordering rule that makes recovery work: the journal is saved, and
// fsynced, before the worker is switched to new content. A host that dies
// while loading the content then finds the activation in the journal on
// its next start and counts it; the other order would load the content
// again with no record that it was ever tried.
package agent
