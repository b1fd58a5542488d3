package sqlstore

import "context"

// OpenAtMigration opens a store migrated only up to migration n, as an
// older build left it.
func OpenAtMigration(ctx context.Context, url, dataDir string, n int) (*Store, error) {
	return open(ctx, url, dataDir, n)
}

// LeaderLockKey is the advisory lock the controller lease holds.
const LeaderLockKey = leaderLockKey
