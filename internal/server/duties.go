package server

import (
	"fmt"
	"slices"

	"github.com/ringfence/ringfence/internal/store"
)

// Separation of duties (docs/rollout.md, "Approvals"): an approval counts
// only when neither the approving token nor the token that created it
// created the release, or stands behind an approval already counted on
// it. One person holding the admin role can mint any number of approver
// tokens, but every one of them names the admin as its creator, so
// together they count as one approval; and an admin's own release cannot
// be approved with tokens the admin minted.

// behind are the tokens an approval stands for: the approving token and
// its creator. An approval stored before tokens were recorded stands for
// its actor's name.
func behind(a store.Approval) []string {
	if a.Token == "" {
		return []string{"actor:" + a.Actor}
	}
	if a.TokenCreator == "" {
		return []string{a.Token}
	}
	return []string{a.Token, a.TokenCreator}
}

// notCounted says why approval a does not count on rel given the approvals
// counted before it, or "" when it counts.
func notCounted(rel store.Release, counted []store.Approval, a store.Approval) string {
	switch {
	case a.Token == "" && a.Actor == rel.CreatedBy,
		a.Token != "" && a.Token == rel.CreatorToken:
		return fmt.Sprintf("%s created release %s and cannot also approve it", a.Actor, rel.ID)
	case a.TokenCreator != "" && a.TokenCreator == rel.CreatorToken:
		return fmt.Sprintf("%s was created by token %s, which created release %s", a.Actor, a.TokenCreator, rel.ID)
	}
	mine := behind(a)
	for _, b := range counted {
		theirs := behind(b)
		i := slices.IndexFunc(mine, func(x string) bool { return slices.Contains(theirs, x) })
		if i < 0 {
			continue
		}
		if i == 0 {
			return fmt.Sprintf("%s already approved release %s", a.Actor, rel.ID)
		}
		return fmt.Sprintf("%s was created by token %s, which stands behind %s's approval of release %s already", a.Actor, mine[i], b.Actor, rel.ID)
	}
	return ""
}

// countedApprovals are rel's approvals that count, in the order given.
func countedApprovals(rel store.Release) []store.Approval {
	var out []store.Approval
	for _, a := range rel.Approvals {
		if notCounted(rel, out, a) == "" {
			out = append(out, a)
		}
	}
	return out
}
