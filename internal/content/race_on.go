//go:build race

package content

// raceEnabled: under the race detector sync.Pool drops what it holds at
// random, so regexp rebuilds its matchers and every event allocates;
// allocation figures measure the detector, not the content.
const raceEnabled = true
