// Package rollout holds the rollout decision logic: plans and waves,
// cohort positions, organisation tracks and the desired version of each
// device. Everything here is pure: it takes a clock reading and snapshots
// and returns decisions, so the server and the simulator run the same code.
package rollout
