// Package sim is the fleet simulator: a discrete-event simulation, in
// virtual time, of up to millions of devices that runs the real rollout
// code. The server is the real server.Server (its check-in code through
// CheckinAs, its controller through ControlOnce: cohorts, strata, gates,
// halts) on an in-memory store whose device rows are made up from a
// compact fleet; each device's agent is the real agent's decision
// functions (journal, crash loop, boot loop, probation, which offers to
// take). Only the world is modelled: who the devices are, when they check
// in, what the content does to them, and the background of unrelated
// crashes, reboots, silences and outages.
//
// Devices that have nothing to report and are told nothing new count as
// heartbeats in bulk (server.Heartbeats): the same counters the check-in
// would write, without a per-device round trip, so a fleet of ten million
// fits in minutes. Every device that is offered a version, reports an
// event or runs anything but the fleet's baseline goes through the
// server's check-in code.
package sim
