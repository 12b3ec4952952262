/**
 * The explorer's strategies: who moves at each decision of a run.
 *
 * - {@link Dfs}: depth-first enumeration of every schedule (stateless: each run
 *   replays a prefix and branches at its end), bounded by a preemption bound
 *   (iterative context bounding, CHESS), with sleep-set partial-order reduction
 *   over the footprints the yield points declare (Godefroid). Deterministic:
 *   candidates are tried in the order "the previous actor first, then by
 *   index" (after a spin point the previous actor goes last).
 * - {@link Random}: a seeded uniform choice among the enabled actors.
 * - {@link Pct}: probabilistic concurrency testing with bug depth d
 *   (Burckhardt et al.): random actor priorities, d − 1 random priority change
 *   points; finds a depth-d bug with probability ≥ 1/(n·k^(d−1)) per run.
 * - {@link Replay}: the choices of a schedule string, exactly (`lenient`: a
 *   choice that is not enabled falls back to the default, for shrinking).
 *
 * @since 0.2.0
 */
import { independent } from "../domain/Footprint.ts"
import { mulberry32 } from "../domain/Prng.ts"
import { type Chooser, type Decision, type Enabled, isPreemption } from "./Controller.ts"

/**
 * The default choice at `d`: keep the previous actor if it is enabled and did
 * not spin, else the lowest-numbered other enabled actor, else the previous one.
 *
 * @since 0.2.0
 * @category choosing
 */
export const defaultChoice = (d: Decision): number => {
  const prev = d.enabled.find((e) => e.actor === d.previous)
  if (prev !== undefined && !prev.spin) return prev.actor
  const other = d.enabled.find((e) => e.actor !== d.previous)
  return (other ?? d.enabled[0]!).actor
}

/** Candidate order of DFS at `d` (see module doc). */
const candidates = (d: Decision): Array<number> => {
  const prev = d.enabled.find((e) => e.actor === d.previous)
  const others = d.enabled.filter((e) => e.actor !== d.previous).map((e) => e.actor)
  if (prev === undefined) return others
  return prev.spin ? [...others, prev.actor] : [prev.actor, ...others]
}

interface Node {
  readonly decision: Decision
  readonly order: ReadonlyArray<number>
  readonly preemptionsBefore: number
  /** Actors asleep here (their next step is independent of everything explored since they slept). */
  readonly sleep: ReadonlySet<number>
  readonly done: Set<number>
  chosen: number
}

/**
 * Counters of a DFS.
 *
 * @category models
 */
export interface DfsStats {
  /** Runs abandoned because every enabled actor was asleep (reduction). */
  readonly prunedByReduction: number
  /** Runs abandoned because the preemption bound forbade every enabled actor. */
  readonly prunedByBound: number
}

/**
 * Depth-first search over schedules. Use: `choose` during a run; after each
 * run `advance()` moves to the next schedule (false when the bounded space is
 * exhausted).
 *
 * @since 0.2.0
 * @category strategies
 */
export class Dfs implements Chooser {
  private stack: Array<Node> = []
  private prunedReduction = 0
  private prunedBound = 0
  /** Maximum preemptions per schedule (`Infinity` = unbounded). */
  readonly bound: number
  /** Sleep-set reduction on/off. */
  readonly reduction: boolean
  /** Start below this prefix (workers split a search by prefixes); the prefix's own siblings are never explored. */
  readonly prefix: ReadonlyArray<number>
  constructor(bound: number, reduction: boolean, prefix: ReadonlyArray<number> = []) {
    this.bound = bound
    this.reduction = reduction
    this.prefix = prefix
  }

  get stats(): DfsStats {
    return { prunedByReduction: this.prunedReduction, prunedByBound: this.prunedBound }
  }

  private cost(node: Node, actor: number): number {
    return isPreemption(node.decision, actor) ? 1 : 0
  }

  private allowed(node: Node, actor: number): boolean {
    return !node.sleep.has(actor) && !node.done.has(actor) && node.preemptionsBefore + this.cost(node, actor) <= this.bound &&
      !(this.splitting && this.handedOff.has(node, actor))
  }

  readonly choose = (d: Decision): number | undefined => {
    const depth = d.step
    if (depth < this.stack.length) return this.stack[depth]!.chosen
    if (depth < this.prefix.length) {
      // A node of the given prefix: its earlier siblings count as explored (the
      // whole search explores them before this one), so sleep sets below it are
      // the same as in a search without the split.
      const forced = this.prefix[depth]!
      const parent = this.stack[depth - 1]
      const node: Node = {
        decision: d,
        order: [forced],
        preemptionsBefore: parent === undefined ? 0 : parent.preemptionsBefore + this.cost(parent, parent.chosen),
        sleep: this.sleepFor(d, parent),
        done: new Set(),
        chosen: forced
      }
      for (const a of candidates(d)) {
        if (a === forced) break
        if (this.allowed(node, a)) node.done.add(a)
      }
      this.stack.push(node)
      return forced
    }
    const parent = this.stack[depth - 1]
    const node: Node = {
      decision: d,
      order: candidates(d),
      preemptionsBefore: parent === undefined ? 0 : parent.preemptionsBefore + this.cost(parent, parent.chosen),
      sleep: this.sleepFor(d, parent),
      done: new Set(),
      chosen: -1
    }
    const pick = node.order.find((a) => this.allowed(node, a))
    if (pick === undefined) {
      if (node.order.some((a) => node.sleep.has(a))) this.prunedReduction++
      else this.prunedBound++
      return undefined
    }
    node.chosen = pick
    this.stack.push(node)
    if (this.splitting) {
      // Split mode: every other allowed candidate here roots a subtree for a
      // worker; this search walks on along the first candidate only.
      const here = this.stack.map((n) => n.chosen)
      node.order.forEach((alt, rank) => {
        if (alt === pick || !this.allowed(node, alt)) return
        this.split.push({ prefix: [...here.slice(0, -1), alt], depth: depth, rank })
      })
      for (const alt of node.order) if (alt !== pick) this.handedOff.add(node, alt)
    }
    return pick
  }

  /**
   * Split mode (see `Workers.ts`): the search runs one schedule (the
   * left-most, "spine") and hands every sibling subtree off as a prefix in
   * {@link split}.
   */
  splitting = false
  /** Candidates handed off to workers (never explored here; not "done" for sleep sets, which follow DFS order). */
  private readonly handedOff = {
    marks: new WeakMap<Node, Set<number>>(),
    add(node: Node, a: number) {
      let set = this.marks.get(node)
      if (set === undefined) this.marks.set(node, set = new Set())
      set.add(a)
    },
    has(node: Node, a: number) {
      return this.marks.get(node)?.has(a) === true
    }
  }
  /** The prefixes split off, with their depth and rank among their siblings. */
  readonly split: Array<{ readonly prefix: ReadonlyArray<number>; readonly depth: number; readonly rank: number }> = []

  /** The sleep set of a new node below `parent` (Godefroid's sleep sets). */
  private sleepFor(d: Decision, parent: Node | undefined): ReadonlySet<number> {
    if (!this.reduction || parent === undefined || d.previousGlobal) return new Set()
    const moved = parent.decision.enabled.find((e) => e.actor === parent.chosen)
    const out = new Set<number>()
    const consider = (u: number) => {
      if (u === parent.chosen) return
      const e: Enabled | undefined = parent.decision.enabled.find((x) => x.actor === u)
      if (e !== undefined && independent(e.footprint, moved?.footprint)) out.add(u)
    }
    for (const u of parent.sleep) consider(u)
    for (const u of parent.done) consider(u)
    return out
  }

  /** Moves to the next schedule; false when the (bounded) space is exhausted. */
  advance(): boolean {
    while (this.stack.length > this.prefix.length) {
      const node = this.stack[this.stack.length - 1]!
      node.done.add(node.chosen)
      const next = node.order.find((a) => this.allowed(node, a))
      if (next !== undefined) {
        node.chosen = next
        return true
      }
      this.stack.pop()
    }
    return false
  }

  /** The frontier: the choices of the current prefix (for progress lines). */
  get depth(): number {
    return this.stack.length
  }
}

/**
 * The strategies' PRNG: mulberry32 (`src/domain/Prng.ts`).
 *
 * @category functions
 */
export const prng = mulberry32

/**
 * Seeded random walk: each run draws from its own stream (`seed`, run index).
 *
 * @since 0.2.0
 * @category strategies
 */
export class Random implements Chooser {
  private rand: () => number
  constructor(seed: number, run: number) {
    this.rand = prng((seed * 2654435761 + run * 40503 + 1) >>> 0)
  }
  readonly choose = (d: Decision): number => d.enabled[Math.floor(this.rand() * d.enabled.length)]!.actor
}

/**
 * PCT with depth `depth` for one run: `steps` is the expected run length k
 * (the longest run seen so far).
 *
 * @since 0.2.0
 * @category strategies
 */
export class Pct implements Chooser {
  private rand: () => number
  private readonly priority = new Map<number, number>()
  private readonly changes: Array<number>
  private readonly depth: number
  constructor(seed: number, run: number, depth: number, steps: number) {
    this.depth = depth
    this.rand = prng((seed * 2246822519 + run * 3266489917 + 7) >>> 0)
    const k = Math.max(1, steps)
    this.changes = Array.from({ length: Math.max(0, depth - 1) }, () => Math.floor(this.rand() * k))
  }
  private prio(actor: number): number {
    let p = this.priority.get(actor)
    if (p === undefined) {
      p = this.depth + this.rand() * 1e6
      this.priority.set(actor, p)
    }
    return p
  }
  private best(d: Decision): number {
    let best = d.enabled[0]!.actor
    for (const e of d.enabled) if (this.prio(e.actor) > this.prio(best)) best = e.actor
    return best
  }
  readonly choose = (d: Decision): number => {
    // a spin point gives way: the spinner drops below everyone until it moves again
    const spinning = d.enabled.find((e) => e.actor === d.previous && e.spin)
    if (spinning !== undefined && d.enabled.length > 1) this.priority.set(spinning.actor, -1 - this.rand())
    const j = this.changes.indexOf(d.step)
    if (j >= 0) this.priority.set(this.best(d), this.depth - 1 - j)
    return this.best(d)
  }
}

/**
 * Replays recorded choices. Strict (default): the choice is used as given,
 * and the run diverges if that actor is not enabled; past the end of the
 * schedule the default choice continues the run. Lenient: a choice that is not
 * enabled falls back to the default (used when shrinking).
 *
 * @since 0.2.0
 * @category strategies
 */
export class Replay implements Chooser {
  readonly choices: ReadonlyArray<number>
  readonly lenient: boolean
  constructor(choices: ReadonlyArray<number>, lenient = false) {
    this.choices = choices
    this.lenient = lenient
  }
  readonly choose = (d: Decision): number => {
    const c = this.choices[d.step]
    if (c === undefined) return defaultChoice(d)
    if (this.lenient && !d.enabled.some((e) => e.actor === c)) return defaultChoice(d)
    return c
  }
}
