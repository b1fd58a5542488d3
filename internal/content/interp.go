package content

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
)

// ErrReason says why an instance could not be evaluated on an event.
type ErrReason uint8

const (
	// ReasonMissingInput: a criterion reads an input the event does not
	// supply (the 19 July defect, here an error instead of a crash).
	ReasonMissingInput ErrReason = iota + 1
	// ReasonWrongKind: the input's kind does not fit the field's type.
	ReasonWrongKind
	// ReasonTooLong: a string input exceeds MaxInputLen.
	ReasonTooLong
	// ReasonBadIP: an ip field holds something that is not an address.
	ReasonBadIP
)

func (r ErrReason) String() string {
	switch r {
	case ReasonMissingInput:
		return "missing-input"
	case ReasonWrongKind:
		return "wrong-kind"
	case ReasonTooLong:
		return "input-too-long"
	case ReasonBadIP:
		return "bad-ip"
	}
	return fmt.Sprintf("ErrReason(%d)", uint8(r))
}

// InstanceError is an instance that could not be evaluated on an event. It
// does not match; it is counted and reported.
type InstanceError struct {
	Instance int32 // index into Compiled.Instances
	Field    int   // the input concerned, 1-based
	Reason   ErrReason
}

// Result is the outcome of one event. Evaluators reuse its slices, so a
// caller that keeps a Result across calls allocates nothing per event.
type Result struct {
	Matches []int32 // instance indexes, ascending
	Errors  []InstanceError
}

func (r *Result) reset() {
	r.Matches = r.Matches[:0]
	r.Errors = r.Errors[:0]
}

// crit is a criterion prepared for evaluation.
type crit struct {
	field int // 0-based input index
	op    Op
	typ   FieldType
	fold  bool
	strs  []string
	nums  []uint64
	addrs []netip.Addr // ip equals/in, sorted
	pfx   netip.Prefix // cidr
	re    *regexp.Regexp
	key   string // regex: literal every match begins with, in index form
	glob  *globMatcher
	lit   *litSearch // contains
}

type instance struct {
	crits    []crit
	maxInput int // highest input read by a non-any criterion, 1-based; 0 if none
}

// bucket is one hash table of an index: prefixes or suffixes of length n
// bytes, or CIDR prefixes of n bits.
type bucket struct {
	n int
	m keyTable
}

// fieldIndex holds the anchors on one input field. Keys are hashes, so a
// lookup may return instances whose anchor does not really match; every
// candidate is evaluated in full, which makes collisions harmless.
type fieldIndex struct {
	field  int
	eq     keyTable
	prefix []bucket // ascending n
	suffix []bucket
	cidr4  []bucket
	cidr6  []bucket
	substr *substrIndex
	ranges *rangeIndex

	substrPats []substrPattern // collected while anchoring
	rangePats  []rangePattern
}

// Evaluator runs one compiled bundle. It is indexed: each instance is
// anchored on its most selective criterion, so the work per event grows
// with the candidate instances, not with the bundle. An Evaluator holds
// scratch space and is not safe for concurrent use; make one per goroutine.
type Evaluator struct {
	c       *Compiled
	inst    []instance
	index   []fieldIndex
	scan    []int32   // instances without an indexable anchor
	byMax   []int32   // instances ordered by maxInput
	maxes   []int     // maxInput of byMax, ascending
	readers [][]int32 // per field: instances with a non-any criterion on it

	// scratch, reset per event
	stamp []uint32
	epoch uint32
	cand  []int32
	addrs []netip.Addr
	bad   []ErrReason
}

// NewEvaluator prepares a compiled bundle for evaluation. It checks the
// bundle's invariants first, so a hand-built or corrupted Compiled is an
// error here rather than a misbehaving interpreter later.
func NewEvaluator(c *Compiled) (*Evaluator, error) {
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", c.Name(), err)
	}
	nf := len(c.Fields)
	e := &Evaluator{
		c:       c,
		inst:    make([]instance, len(c.Instances)),
		readers: make([][]int32, nf),
		stamp:   make([]uint32, len(c.Instances)),
		addrs:   make([]netip.Addr, nf),
		bad:     make([]ErrReason, nf),
	}
	idx := make([]*fieldIndex, nf)
	for i, ci := range c.Instances {
		in := &e.inst[i]
		for _, cc := range ci.Criteria {
			cr, err := prepare(c.Fields[cc.Field-1].Type, cc)
			if err != nil {
				return nil, fmt.Errorf("bundle %s: instance %s: %w", c.Name(), ci.ID, err)
			}
			in.crits = append(in.crits, cr)
			if cc.Op != OpAny {
				in.maxInput = max(in.maxInput, cc.Field)
				if r := e.readers[cr.field]; len(r) == 0 || r[len(r)-1] != int32(i) {
					e.readers[cr.field] = append(r, int32(i))
				}
			}
		}
		if !anchor(idx, in.crits, int32(i)) {
			e.scan = append(e.scan, int32(i))
		}
		// Only criteria that read something are tested, in the author's
		// order (authors put the selective ones first) but with regexes
		// last, so a candidate is usually ruled out by a plain comparison.
		in.crits = slices.DeleteFunc(in.crits, func(cr crit) bool { return cr.op == OpAny })
		slices.SortStableFunc(in.crits, func(a, b crit) int { return b2i(a.op == OpRegex) - b2i(b.op == OpRegex) })
		e.byMax = append(e.byMax, int32(i))
	}
	sort.SliceStable(e.byMax, func(a, b int) bool { return e.inst[e.byMax[a]].maxInput < e.inst[e.byMax[b]].maxInput })
	for _, i := range e.byMax {
		e.maxes = append(e.maxes, e.inst[i].maxInput)
	}
	for f, fi := range idx {
		if fi == nil {
			continue
		}
		if len(fi.substrPats) > 0 {
			if fi.substr = buildSubstrIndex(fi.substrPats, c.Fields[f].Type.folded()); fi.substr == nil {
				for _, p := range fi.substrPats {
					e.scan = append(e.scan, p.inst)
				}
			}
		}
		if len(fi.rangePats) > 0 {
			if fi.ranges = buildRangeIndex(fi.rangePats, c.Fields[f].Type == TypeInt); fi.ranges == nil {
				for _, p := range fi.rangePats {
					e.scan = append(e.scan, p.inst)
				}
			}
		}
		fi.substrPats, fi.rangePats = nil, nil
		fi.eq.freeze()
		for _, bs := range [][]bucket{fi.prefix, fi.suffix, fi.cidr4, fi.cidr6} {
			for i := range bs {
				bs[i].m.freeze()
			}
		}
		e.index = append(e.index, *fi)
	}
	slices.Sort(e.scan)
	return e, nil
}

// Compiled returns the bundle being evaluated.
func (e *Evaluator) Compiled() *Compiled { return e.c }

// candidates exposes the instances the last Eval tested in full (index
// hits and unindexed instances): the cost model charges for those.
func (e *Evaluator) candidates() []int32 { return e.cand }

func prepare(t FieldType, cc CompiledCriterion) (crit, error) {
	cr := crit{field: cc.Field - 1, op: cc.Op, typ: t, fold: t.folded(), strs: cc.Strs, nums: cc.Nums}
	switch {
	case cc.Op == OpRegex:
		p, err := planRegex(cc.Strs[0], cr.fold)
		if err != nil {
			return crit{}, err
		}
		cr.re, cr.key = p.re, p.key
	case cc.Op == OpGlob:
		cr.glob = compileGlob(cc.Strs[0], cr.fold)
	case cc.Op == OpContains:
		cr.lit = newLitSearch(cc.Strs[0], cr.fold)
	case cc.Op == OpCIDR:
		p, err := netip.ParsePrefix(cc.Strs[0])
		if err != nil {
			return crit{}, err
		}
		cr.pfx = p
	case t == TypeIP && (cc.Op == OpEquals || cc.Op == OpIn):
		for _, s := range cc.Strs {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return crit{}, err
			}
			cr.addrs = append(cr.addrs, a)
		}
		slices.SortFunc(cr.addrs, netip.Addr.Compare)
	}
	return cr, nil
}

// anchor puts the instance into the index under its most selective
// criterion and reports whether one was indexable.
func anchor(idx []*fieldIndex, crits []crit, inst int32) bool {
	best, score := -1, 0
	for i, cr := range crits {
		if s := anchorScore(cr); s > score {
			best, score = i, s
		}
	}
	if best < 0 {
		return false
	}
	cr := crits[best]
	fi := idx[cr.field]
	if fi == nil {
		fi = &fieldIndex{field: cr.field, eq: newKeyTable()}
		idx[cr.field] = fi
	}
	add := func(m map[uint64][]int32, k uint64) {
		if l := m[k]; len(l) == 0 || l[len(l)-1] != inst {
			m[k] = append(l, inst)
		}
	}
	switch cr.op {
	case OpEquals, OpIn:
		switch {
		case cr.addrs != nil:
			for _, a := range cr.addrs {
				add(fi.eq.build, hashAddr(a))
			}
		case cr.typ.stringLike():
			for _, s := range cr.strs {
				add(fi.eq.build, hashString(s, false))
			}
		default:
			for _, n := range cr.nums {
				add(fi.eq.build, n)
			}
		}
	case OpCIDR:
		b := &fi.cidr6
		if cr.pfx.Addr().Is4() {
			b = &fi.cidr4
		}
		add(bucketFor(b, cr.pfx.Bits()), hashAddr(cr.pfx.Addr()))
	case OpPrefix:
		add(bucketFor(&fi.prefix, len(cr.strs[0])), fnvString(cr.strs[0], false))
	case OpSuffix:
		add(bucketFor(&fi.suffix, len(cr.strs[0])), fnvReverse(cr.strs[0], false))
	case OpRegex:
		add(bucketFor(&fi.prefix, len(cr.key)), fnvString(cr.key, false))
	case OpContains:
		fi.substrPats = append(fi.substrPats, substrPattern{cr.strs[0], inst})
	case OpRange:
		signed := cr.typ == TypeInt
		fi.rangePats = append(fi.rangePats, rangePattern{orderBits(cr.nums[0], signed), orderBits(cr.nums[1], signed), inst})
	case OpGlob:
		if p := globLiteralPrefix(cr.strs[0]); p != "" {
			add(bucketFor(&fi.prefix, len(p)), fnvString(p, false))
		} else {
			s := globLiteralSuffix(cr.strs[0])
			add(bucketFor(&fi.suffix, len(s)), fnvReverse(s, false))
		}
	}
	return true
}

// anchorScore ranks how few events a criterion lets through; 0 means it
// cannot anchor. Equality on a high-cardinality field is best; on an enum
// or bool it lets most events through, so almost anything beats it.
func anchorScore(cr crit) int {
	switch cr.op {
	case OpEquals, OpIn:
		n := max(len(cr.strs), len(cr.nums))
		switch cr.typ {
		case TypeEnum, TypeBool:
			return 5
		case TypeInt, TypeUint:
			return 300 - min(n, 100)
		}
		return 1000 - min(n, 100)
	case OpCIDR:
		return 100 + cr.pfx.Bits()
	case OpRange:
		return 8
	case OpPrefix, OpSuffix, OpContains:
		return 10 + min(len(cr.strs[0]), 80)
	case OpGlob:
		p, s := globLiteralPrefix(cr.strs[0]), globLiteralSuffix(cr.strs[0])
		if n := max(len(p), len(s)); n > 0 {
			return 10 + min(n, 80)
		}
	case OpRegex:
		if cr.key != "" {
			return 10 + min(len(cr.key), 80)
		}
	}
	return 0
}

func bucketFor(bs *[]bucket, n int) map[uint64][]int32 {
	for _, b := range *bs {
		if b.n == n {
			return b.m.build
		}
	}
	*bs = append(*bs, bucket{n: n, m: newKeyTable()})
	slices.SortFunc(*bs, func(a, b bucket) int { return a.n - b.n })
	return bucketFor(bs, n)
}

// Eval evaluates one event into res, reusing res's slices. Events of
// another template type match nothing. Eval never panics and never reads an
// input the event does not have.
func (e *Evaluator) Eval(ev Event, res *Result) {
	res.reset()
	if ev.Type != e.c.Type {
		return
	}
	e.epoch++
	if e.epoch == 0 {
		clear(e.stamp)
		for k := range e.index {
			if x := e.index[k].substr; x != nil {
				clear(x.seen)
			}
		}
		e.epoch = 1
	}
	n := min(len(ev.Inputs), len(e.c.Fields))

	// Instances reading past the inputs supplied: a suffix of byMax.
	first := sort.SearchInts(e.maxes, n+1)
	for _, i := range e.byMax[first:] {
		e.stamp[i] = e.epoch
		res.Errors = append(res.Errors, InstanceError{Instance: i, Field: e.firstMissing(i, n), Reason: ReasonMissingInput})
	}
	// Inputs that cannot be read as their field's type.
	for f := 0; f < n; f++ {
		e.bad[f] = 0
		if len(e.readers[f]) == 0 {
			continue
		}
		t := e.c.Fields[f].Type
		v := ev.Inputs[f]
		e.bad[f] = checkInput(t, v)
		if e.bad[f] == 0 && t == TypeIP {
			a, err := netip.ParseAddr(v.Str)
			if err != nil {
				e.bad[f] = ReasonBadIP
			}
			e.addrs[f] = a.Unmap()
		}
		if e.bad[f] != 0 {
			for _, i := range e.readers[f] {
				if e.stamp[i] != e.epoch {
					e.stamp[i] = e.epoch
					res.Errors = append(res.Errors, InstanceError{Instance: i, Field: f + 1, Reason: e.bad[f]})
				}
			}
		}
	}
	// Candidates from the index and the unindexed rest.
	e.cand = e.cand[:0]
	for k := range e.index {
		fi := &e.index[k]
		if fi.field >= n || e.bad[fi.field] != 0 {
			continue
		}
		e.lookup(fi, ev.Inputs[fi.field])
	}
	for _, i := range e.scan {
		if e.stamp[i] != e.epoch {
			e.cand = append(e.cand, i)
		}
	}
	for _, i := range e.cand {
		if e.matches(&e.inst[i], ev.Inputs) {
			res.Matches = append(res.Matches, i)
		}
	}
	slices.Sort(res.Matches)
	slices.SortFunc(res.Errors, func(a, b InstanceError) int { return int(a.Instance - b.Instance) })
}

func (e *Evaluator) firstMissing(i int32, n int) int {
	f := math.MaxInt
	for _, cr := range e.inst[i].crits {
		if cr.op != OpAny && cr.field >= n {
			f = min(f, cr.field+1)
		}
	}
	return f
}

// checkInput says whether a value can be read as a field of type t.
func checkInput(t FieldType, v Value) ErrReason {
	switch {
	case v.Kind == KindNone:
		return ReasonMissingInput
	case t.stringLike():
		if v.Kind != KindString {
			return ReasonWrongKind
		}
		if len(v.Str) > MaxInputLen {
			return ReasonTooLong
		}
	case t == TypeBool:
		if v.Kind != KindBool || v.Num > 1 {
			return ReasonWrongKind
		}
	case t == TypeInt:
		if (v.Kind != KindInt && v.Kind != KindUint) || (v.Kind == KindUint && v.Num > math.MaxInt64) {
			return ReasonWrongKind
		}
	case t == TypeUint:
		if (v.Kind != KindInt && v.Kind != KindUint) || (v.Kind == KindInt && int64(v.Num) < 0) {
			return ReasonWrongKind
		}
	}
	return 0
}

func (e *Evaluator) push(l []int32) {
	for _, i := range l {
		if e.stamp[i] != e.epoch {
			e.stamp[i] = e.epoch
			e.cand = append(e.cand, i)
		}
	}
}

func (e *Evaluator) lookup(fi *fieldIndex, v Value) {
	t := e.c.Fields[fi.field].Type
	if !t.stringLike() {
		e.push(fi.eq.get(v.Num))
		if fi.ranges != nil {
			e.push(fi.ranges.lookup(v.Num))
		}
		return
	}
	if t == TypeIP {
		a := e.addrs[fi.field]
		e.push(fi.eq.get(hashAddr(a)))
		bs := fi.cidr6
		if a.Is4() {
			bs = fi.cidr4
		}
		for i := range bs {
			b := &bs[i]
			if p, err := a.Prefix(b.n); err == nil {
				e.push(b.m.get(hashAddr(p.Addr())))
			}
		}
		return
	}
	fold := t.folded()
	if !fi.eq.empty() {
		e.push(fi.eq.get(hashString(v.Str, fold)))
	}
	s := v.Str
	if len(fi.prefix) > 0 {
		h, pos := uint64(fnvOffset), 0
		for i := range fi.prefix {
			b := &fi.prefix[i]
			if b.n > len(s) {
				break
			}
			for ; pos < b.n; pos++ {
				h = fnvStep(h, s[pos], fold)
			}
			e.push(b.m.get(h))
		}
	}
	if fi.substr != nil {
		e.scanSubstr(fi.substr, s)
	}
	if len(fi.suffix) > 0 {
		h, pos := uint64(fnvOffset), 0
		for i := range fi.suffix {
			b := &fi.suffix[i]
			if b.n > len(s) {
				break
			}
			for ; pos < b.n; pos++ {
				h = fnvStep(h, s[len(s)-1-pos], fold)
			}
			e.push(b.m.get(h))
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (e *Evaluator) matches(in *instance, inputs []Value) bool {
	for k := range in.crits {
		cr := &in.crits[k]
		if !e.match(cr, inputs[cr.field]) {
			return false
		}
	}
	return true
}

// match tests one criterion on a value that checkInput accepted.
func (e *Evaluator) match(cr *crit, v Value) bool {
	switch cr.op {
	case OpEquals, OpIn:
		switch {
		case cr.addrs != nil:
			_, ok := slices.BinarySearchFunc(cr.addrs, e.addrs[cr.field], netip.Addr.Compare)
			return ok
		case cr.typ.stringLike():
			_, ok := slices.BinarySearchFunc(cr.strs, v.Str, func(p, s string) int { return compareFold(p, s, cr.fold) })
			return ok
		default:
			_, ok := slices.BinarySearch(cr.nums, v.Num)
			return ok
		}
	case OpPrefix:
		p := cr.strs[0]
		return len(v.Str) >= len(p) && equalFold(v.Str[:len(p)], p, cr.fold)
	case OpSuffix:
		p := cr.strs[0]
		return len(v.Str) >= len(p) && equalFold(v.Str[len(v.Str)-len(p):], p, cr.fold)
	case OpContains:
		return cr.lit.contains(v.Str)
	case OpGlob:
		return cr.glob.match(v.Str)
	case OpRegex:
		return cr.re.MatchString(v.Str)
	case OpCIDR:
		return cr.pfx.Contains(e.addrs[cr.field])
	case OpRange:
		if cr.typ == TypeInt {
			return int64(cr.nums[0]) <= int64(v.Num) && int64(v.Num) <= int64(cr.nums[1])
		}
		return cr.nums[0] <= v.Num && v.Num <= cr.nums[1]
	}
	return false
}

// equalFold compares s with an already folded pattern p.
func equalFold(s, p string, fold bool) bool {
	if !fold {
		return s == p
	}
	if len(s) != len(p) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != p[i] {
			return false
		}
	}
	return true
}

// compareFold orders an already folded pattern p against s folded.
func compareFold(p, s string, fold bool) int {
	if !fold {
		switch {
		case p < s:
			return -1
		case p > s:
			return 1
		}
		return 0
	}
	for i := 0; i < len(p) && i < len(s); i++ {
		if c := lowerASCII(s[i]); p[i] != c {
			if p[i] < c {
				return -1
			}
			return 1
		}
	}
	return len(p) - len(s)
}
