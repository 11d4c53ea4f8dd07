//go:build race

package main

// raceEnabled: the test binary runs with the race detector, so the
// processes it starts are built with it too (their packages are in the
// build cache already, and races under load are worth catching).
const raceEnabled = true
