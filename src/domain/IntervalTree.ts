/**
 * A persistent (immutable, structurally shared) interval tree — the TypeScript
 * counterpart of the Linux kernel's `include/linux/interval_tree.h` /
 * `lib/interval_tree.c`, which drm_gpusvm uses to index notifiers by address
 * range and ranges inside each notifier (design.md §2).
 *
 * Semantics follow the kernel:
 * - a node covers the closed interval `[start, last]` (`last` is inclusive,
 *   exactly like `interval_tree_node.last`);
 * - nodes are ordered by `start`; because this tree is also keyed, ties on
 *   `start` are broken by `last`, so the key of an entry is `(start, last)`;
 * - every node is augmented with the maximum `last` of its subtree
 *   (`__subtree_last` in the kernel), which lets the overlap queries prune;
 * - a stored entry `[s, l]` overlaps a query `[start, last]` iff
 *   `s <= last && l >= start` — the kernel's test, used verbatim (so a query
 *   with `start > last` is not rejected, it is evaluated with that formula).
 *
 * Differences from the kernel:
 * - the tree is a persistent AVL tree (height ≤ 1.4405·log2(n + 2) − 0.3277)
 *   instead of an intrusive red-black tree. Every update returns a new tree
 *   and shares all untouched subtrees with the old one; old versions are never
 *   modified. No locking is needed: callers keep the current version in a
 *   `TxRef` (or any other reference cell) and swap it atomically.
 * - inserting an entry whose key `(start, last)` is already present replaces
 *   its value (the kernel would happily store a duplicate node).
 * - `next` looks the successor up by key from the root (there are no parent
 *   pointers in a persistent tree), still O(log n).
 *
 * Addresses are plain JS numbers and may be any safe integer up to
 * `Number.MAX_SAFE_INTEGER` (2^53 − 1). The implementation only compares
 * numbers; it never uses 32-bit bitwise operators on them.
 *
 * Hot paths (`first`, `next`, `successor`, `find`) do not allocate; the
 * `Entry` they return is the tree's own node seen through the read-only
 * {@link Entry} interface.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"

/**
 * A key `(start, last)` — what {@link next} and {@link successor} need to
 * locate a position (any {@link Entry} is a key).
 *
 * @since 0.1.0
 * @category models
 */
export interface Key {
  readonly start: number
  readonly last: number
}

/**
 * One stored interval and its payload: covers `[start, last]` with `last`
 * inclusive (kernel `struct interval_tree_node` fields `start` / `last`).
 * Entries handed out by this module are immutable.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry<out A> extends Key {
  readonly value: A
}

/**
 * An internal tree node, exposed read-only for diagnostics and invariant
 * checks (tests). `height` is the AVL height (a leaf has height 1), `size` the
 * number of entries in the subtree and `maxLast` the largest `last` in the
 * subtree (the kernel's `__subtree_last`). Never mutated after construction.
 *
 * @since 0.1.0
 * @category models
 */
export interface Node<out A> extends Entry<A> {
  readonly left: Node<A> | undefined
  readonly right: Node<A> | undefined
  readonly height: number
  readonly size: number
  readonly maxLast: number
}

/**
 * A persistent interval tree mapping closed intervals `[start, last]` to
 * values of type `A` — the immutable analogue of the kernel's
 * `struct rb_root_cached` used with `interval_tree_*`. Iterating it yields
 * the entries in `(start, last)` order. Immutable: every update returns a new
 * tree, so no locking is needed; callers keep the current version in a
 * `TxRef`.
 *
 * @since 0.1.0
 * @category models
 */
export interface IntervalTree<out A> extends Iterable<Entry<A>> {
  /** The root node (`undefined` when empty). Read-only; for diagnostics. */
  readonly root: Node<A> | undefined
  /** Number of entries, O(1). Same as {@link size}. */
  readonly size: number
}

// ---------------------------------------------------------------------------
// internals
// ---------------------------------------------------------------------------

class NodeImpl<A> implements Node<A> {
  readonly start: number
  readonly last: number
  readonly value: A
  readonly left: NodeImpl<A> | undefined
  readonly right: NodeImpl<A> | undefined
  readonly height: number
  readonly size: number
  readonly maxLast: number
  constructor(
    start: number,
    last: number,
    value: A,
    left: NodeImpl<A> | undefined,
    right: NodeImpl<A> | undefined
  ) {
    this.start = start
    this.last = last
    this.value = value
    this.left = left
    this.right = right
    let height = 1
    let size = 1
    let maxLast = last
    if (left !== undefined) {
      height = left.height + 1
      size += left.size
      if (left.maxLast > maxLast) maxLast = left.maxLast
    }
    if (right !== undefined) {
      if (right.height >= height) height = right.height + 1
      size += right.size
      if (right.maxLast > maxLast) maxLast = right.maxLast
    }
    this.height = height
    this.size = size
    this.maxLast = maxLast
  }
}

class IntervalTreeImpl<A> implements IntervalTree<A> {
  readonly root: NodeImpl<A> | undefined
  constructor(root: NodeImpl<A> | undefined) {
    this.root = root
  }
  get size(): number {
    return this.root === undefined ? 0 : this.root.size
  }
  [Symbol.iterator](): Iterator<Entry<A>> {
    return inOrder(this.root)
  }
}

const EMPTY: IntervalTreeImpl<never> = new IntervalTreeImpl<never>(undefined)

const rootOf = <A>(tree: IntervalTree<A>): NodeImpl<A> | undefined => (tree as IntervalTreeImpl<A>).root

const heightOf = (n: NodeImpl<unknown> | undefined): number => (n === undefined ? 0 : n.height)

/** Compares key (start, last) with the node's key. */
const compare = (start: number, last: number, n: Key): number =>
  start < n.start ? -1 : start > n.start ? 1 : last < n.last ? -1 : last > n.last ? 1 : 0

/** Builds a node from parts whose heights differ by at most 2, restoring the AVL invariant. */
const balance = <A>(
  start: number,
  last: number,
  value: A,
  l: NodeImpl<A> | undefined,
  r: NodeImpl<A> | undefined
): NodeImpl<A> => {
  const hl = heightOf(l)
  const hr = heightOf(r)
  if (hl > hr + 1) {
    const ll = l!.left
    const lr = l!.right
    if (heightOf(ll) >= heightOf(lr)) {
      // single right rotation
      return new NodeImpl(l!.start, l!.last, l!.value, ll, new NodeImpl(start, last, value, lr, r))
    }
    // left-right double rotation
    return new NodeImpl(
      lr!.start,
      lr!.last,
      lr!.value,
      new NodeImpl(l!.start, l!.last, l!.value, ll, lr!.left),
      new NodeImpl(start, last, value, lr!.right, r)
    )
  }
  if (hr > hl + 1) {
    const rl = r!.left
    const rr = r!.right
    if (heightOf(rr) >= heightOf(rl)) {
      // single left rotation
      return new NodeImpl(r!.start, r!.last, r!.value, new NodeImpl(start, last, value, l, rl), rr)
    }
    // right-left double rotation
    return new NodeImpl(
      rl!.start,
      rl!.last,
      rl!.value,
      new NodeImpl(start, last, value, l, rl!.left),
      new NodeImpl(r!.start, r!.last, r!.value, rl!.right, rr)
    )
  }
  return new NodeImpl(start, last, value, l, r)
}

const insertNode = <A>(
  n: NodeImpl<A> | undefined,
  start: number,
  last: number,
  value: A
): NodeImpl<A> => {
  if (n === undefined) return new NodeImpl(start, last, value, undefined, undefined)
  const c = compare(start, last, n)
  if (c < 0) {
    const l = insertNode(n.left, start, last, value)
    return l === n.left ? n : balance(n.start, n.last, n.value, l, n.right)
  }
  if (c > 0) {
    const r = insertNode(n.right, start, last, value)
    return r === n.right ? n : balance(n.start, n.last, n.value, n.left, r)
  }
  return n.value === value ? n : new NodeImpl(start, last, value, n.left, n.right)
}

const removeMin = <A>(n: NodeImpl<A>): NodeImpl<A> | undefined =>
  n.left === undefined ? n.right : balance(n.start, n.last, n.value, removeMin(n.left), n.right)

const removeNode = <A>(n: NodeImpl<A> | undefined, start: number, last: number): NodeImpl<A> | undefined => {
  if (n === undefined) return undefined
  const c = compare(start, last, n)
  if (c < 0) {
    const l = removeNode(n.left, start, last)
    return l === n.left ? n : balance(n.start, n.last, n.value, l, n.right)
  }
  if (c > 0) {
    const r = removeNode(n.right, start, last)
    return r === n.right ? n : balance(n.start, n.last, n.value, n.left, r)
  }
  if (n.left === undefined) return n.right
  if (n.right === undefined) return n.left
  let m = n.right
  while (m.left !== undefined) m = m.left
  return balance(m.start, m.last, m.value, n.left, removeMin(n.right))
}

/**
 * The kernel's `interval_tree_subtree_search`: leftmost node of `n`'s subtree
 * overlapping [start, last], given nothing about `n` yet. Iterative, no
 * backtracking (see the argument in `first`).
 */
const leftmostOverlap = <A>(n: NodeImpl<A> | undefined, start: number, last: number): NodeImpl<A> | undefined => {
  if (n === undefined || n.maxLast < start) return undefined
  for (;;) {
    const l: NodeImpl<A> | undefined = n.left
    if (l !== undefined && l.maxLast >= start) {
      // Some node on the left ends at/after `start`. Either it starts at or
      // before `last` (overlap exists on the left), or it starts after
      // `last` — then so does `n` and everything right of it: no overlap.
      n = l
      continue
    }
    if (n.start <= last) {
      if (n.last >= start) return n
      const r: NodeImpl<A> | undefined = n.right
      if (r !== undefined && r.maxLast >= start) {
        n = r
        continue
      }
    }
    return undefined
  }
}

/** Lowest-key node with key > (ks, kl) overlapping [start, last]. O(log n). */
const nextOverlap = <A>(
  n: NodeImpl<A> | undefined,
  ks: number,
  kl: number,
  start: number,
  last: number
): NodeImpl<A> | undefined => {
  if (n === undefined || n.maxLast < start) return undefined
  if (compare(ks, kl, n) >= 0) {
    // n's key <= (ks, kl): only the right subtree can hold keys > (ks, kl)
    return nextOverlap(n.right, ks, kl, start, last)
  }
  const found = nextOverlap(n.left, ks, kl, start, last)
  if (found !== undefined) return found
  if (n.start > last) return undefined
  if (n.last >= start) return n
  return leftmostOverlap(n.right, start, last)
}

function* inOrder<A>(root: NodeImpl<A> | undefined): Generator<Entry<A>, void, undefined> {
  const stack: Array<NodeImpl<A>> = []
  let n = root
  for (;;) {
    while (n !== undefined) {
      stack.push(n)
      n = n.left
    }
    const top = stack.pop()
    if (top === undefined) return
    yield top
    n = top.right
  }
}

function* overlapIter<A>(
  root: NodeImpl<A> | undefined,
  start: number,
  last: number
): Generator<Entry<A>, void, undefined> {
  const stack: Array<NodeImpl<A>> = []
  let n = root
  for (;;) {
    // push the left spine, skipping subtrees that end before `start`
    while (n !== undefined && n.maxLast >= start) {
      stack.push(n)
      n = n.left
    }
    const top = stack.pop()
    if (top === undefined) return
    // in-order successors all have start >= top.start: done once past `last`
    if (top.start > last) return
    if (top.last >= start) yield top
    n = top.right
  }
}

const assertInterval = (start: number, last: number): void => {
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(last) && start <= last)) {
    throw new RangeError(`IntervalTree: invalid interval [${start}, ${last}] (need safe integers, start <= last)`)
  }
}

// ---------------------------------------------------------------------------
// public API
// ---------------------------------------------------------------------------

/**
 * The empty tree (the kernel's `RB_ROOT_CACHED`). Immutable and shared; no
 * locking needed, callers keep trees in a `TxRef`. O(1).
 *
 * @since 0.1.0
 * @category functions
 */
export const empty = <A = never>(): IntervalTree<A> => EMPTY

/**
 * Returns a new tree with `[start, last] ↦ value` added — mirrors the
 * kernel's `interval_tree_insert`. Entries are ordered by `start`, then
 * `last`; if an entry with exactly this `(start, last)` exists its value is
 * replaced (the same tree is returned if the value is already `===`).
 * Overlapping and duplicate-start intervals are allowed. The input tree is
 * not modified (persistent, structural sharing; no locking needed, callers
 * keep the tree in a `TxRef`). O(log n).
 *
 * @throws RangeError if `start`/`last` are not safe integers with `start <= last`.
 * @since 0.1.0
 * @category functions
 */
export const insert = <A>(tree: IntervalTree<A>, start: number, last: number, value: A): IntervalTree<A> => {
  assertInterval(start, last)
  const root = rootOf(tree)
  const next = insertNode(root, start, last, value)
  return next === root ? tree : new IntervalTreeImpl(next)
}

/**
 * Returns a new tree without the entry whose key is exactly `(start, last)`
 * — mirrors the kernel's `interval_tree_remove`. Returns the very same tree
 * object when there is no such entry. The input tree is not modified
 * (persistent; no locking needed, callers keep the tree in a `TxRef`).
 * O(log n).
 *
 * @since 0.1.0
 * @category functions
 */
export const remove = <A>(tree: IntervalTree<A>, start: number, last: number): IntervalTree<A> => {
  const root = rootOf(tree)
  const next = removeNode(root, start, last)
  if (next === root) return tree
  return next === undefined ? EMPTY : new IntervalTreeImpl(next)
}

/**
 * The entry with the lowest `(start, last)` key overlapping `[start, last]`
 * (i.e. `entry.start <= last && entry.last >= start`), or `undefined` —
 * mirrors the kernel's `interval_tree_iter_first`. Iterative and
 * allocation-free (hot path). Pure read of an immutable tree: no locking
 * needed. O(log n).
 *
 * @since 0.1.0
 * @category functions
 */
export const first = <A>(tree: IntervalTree<A>, start: number, last: number): Entry<A> | undefined =>
  leftmostOverlap(rootOf(tree), start, last)

/**
 * {@link first} wrapped in an `Option`: `Some(entry)` for the lowest-key
 * entry overlapping `[start, last]`, else `None` — mirrors the kernel's
 * `interval_tree_iter_first`. Immutable tree, no locking needed. O(log n).
 *
 * @since 0.1.0
 * @category functions
 */
export const firstOption = <A>(tree: IntervalTree<A>, start: number, last: number): Option.Option<Entry<A>> =>
  Option.fromUndefinedOr(leftmostOverlap(rootOf(tree), start, last))

/**
 * The entry following `entry` in `(start, last)` order that overlaps
 * `[start, last]`, or `undefined` — mirrors the kernel's
 * `interval_tree_iter_next(node, start, last)`. `entry` is located by key, so
 * it need not be present in `tree` (it may come from an older version).
 * Allocation-free; immutable tree, no locking needed. O(log n).
 *
 * @since 0.1.0
 * @category functions
 */
export const next = <A>(
  tree: IntervalTree<A>,
  entry: Key,
  start: number,
  last: number
): Entry<A> | undefined => nextOverlap(rootOf(tree), entry.start, entry.last, start, last)

/**
 * The in-order successor of `entry` — the entry with the smallest
 * `(start, last)` key strictly greater than `entry`'s, regardless of
 * overlap — or `undefined`. The kernel equivalent is `rb_next` on an
 * interval-tree node (drm_gpusvm walks ranges with it). `entry` is located by
 * key and need not be present. Allocation-free; immutable tree, no locking
 * needed. O(log n).
 *
 * @since 0.1.0
 * @category functions
 */
export const successor = <A>(tree: IntervalTree<A>, entry: Key): Entry<A> | undefined => {
  const s = entry.start
  const l = entry.last
  let n = rootOf(tree)
  let candidate: NodeImpl<A> | undefined
  while (n !== undefined) {
    if (compare(s, l, n) < 0) {
      candidate = n
      n = n.left
    } else {
      n = n.right
    }
  }
  return candidate
}

/**
 * Exact lookup: the entry whose key is `(start, last)`, or `undefined`. The
 * kernel has no direct equivalent (callers use `interval_tree_iter_first`
 * and compare bounds). Allocation-free; immutable tree, no locking needed.
 * O(log n).
 *
 * @since 0.1.0
 * @category functions
 */
export const find = <A>(tree: IntervalTree<A>, start: number, last: number): Entry<A> | undefined => {
  let n = rootOf(tree)
  while (n !== undefined) {
    const c = compare(start, last, n)
    if (c === 0) return n
    n = c < 0 ? n.left : n.right
  }
  return undefined
}

/**
 * All entries overlapping `[start, last]`, in `(start, last)` order — the
 * lazy equivalent of the kernel loop `for (n = interval_tree_iter_first(…);
 * n; n = interval_tree_iter_next(n, …))`. Iterates a snapshot: later updates
 * (which create new trees) never affect it, no locking needed. O(log n + k)
 * when the stored intervals are disjoint (the GPU SVM case); in general
 * O(min(n, (k + 1)·log n)).
 *
 * @since 0.1.0
 * @category functions
 */
export const overlapping = <A>(tree: IntervalTree<A>, start: number, last: number): Iterable<Entry<A>> => ({
  [Symbol.iterator]: () => overlapIter(rootOf(tree), start, last)
})

/**
 * All entries in `(start, last)` order (kernel: an in-order `rb_first` /
 * `rb_next` walk). Same as iterating the tree itself. Iterates an immutable
 * snapshot, no locking needed. O(n) total.
 *
 * @since 0.1.0
 * @category functions
 */
export const entries = <A>(tree: IntervalTree<A>): IterableIterator<Entry<A>> => inOrder(rootOf(tree))

/**
 * All entries in `(start, last)` order as a fresh array. Immutable tree, no
 * locking needed. O(n).
 *
 * @since 0.1.0
 * @category functions
 */
export const toArray = <A>(tree: IntervalTree<A>): Array<Entry<A>> => Array.from(inOrder(rootOf(tree)))

/**
 * Number of entries. O(1). (The kernel tree does not track this.)
 *
 * @since 0.1.0
 * @category functions
 */
export const size = <A>(tree: IntervalTree<A>): number => {
  const root = rootOf(tree)
  return root === undefined ? 0 : root.size
}

/**
 * `true` iff the tree has no entries (kernel: `RB_EMPTY_ROOT`). O(1).
 *
 * @since 0.1.0
 * @category functions
 */
export const isEmpty = <A>(tree: IntervalTree<A>): boolean => rootOf(tree) === undefined

/**
 * Height of the tree: 0 when empty, 1 for a single entry. As an AVL tree it
 * is at most 1.4405·log2(n + 2) − 0.3277. O(1).
 *
 * @since 0.1.0
 * @category functions
 */
export const height = <A>(tree: IntervalTree<A>): number => heightOf(rootOf(tree))

/**
 * Builds a tree from `[start, last, value]` triples by repeated
 * {@link insert} (later duplicates of a key win). Immutable result, no
 * locking needed. O(n log n).
 *
 * @since 0.1.0
 * @category functions
 */
export const fromIterable = <A>(items: Iterable<readonly [start: number, last: number, value: A]>): IntervalTree<A> => {
  let tree: IntervalTree<A> = EMPTY
  for (const [start, last, value] of items) tree = insert(tree, start, last, value)
  return tree
}
