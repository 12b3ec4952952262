/**
 * The event log of one scenario run (issue #19): what happened, on which
 * actor, in which order and when — the input of the HTML report
 * (`src/report/`) and of `gpusvm simulate FILE --events out.jsonl` (one JSON
 * {@link RunEvent} per line).
 *
 * Every event carries:
 * - `seq`: the logical step counter (0, 1, 2, … in the order the events were
 *   recorded; for a spanned event, the order it *started* in);
 * - `actor`: who ran it — a scenario thread `t0`, `t1`, …, `gc-worker` (the
 *   driver's garbage-collector fiber), `main` (the runner itself: the end-of-run
 *   checks);
 * - `atMs`: the run's clock at the event, from its start. Under the explorer
 *   (`--schedule`, counterexamples) the clock is virtual (replays match byte for
 *   byte); otherwise it is the wall clock;
 * - `realMs`: wall-clock milliseconds since recording began (always real);
 * - `step`: the scenario step path the actor was running (`steps[3]`,
 *   `threads[1].steps[0]`), when known.
 *
 * The kinds mirror the kernel's boundaries: a GPU fault
 * (`xe_svm_handle_pagefault` → `drm_gpusvm_range_find_or_insert`), a range
 * created / removed (`drm_gpusvm_range_find_or_insert` /
 * `drm_gpusvm_range_remove`), `drm_gpusvm_range_get_pages`, a GPU bind
 * (`xe_vm_range_rebind`), an invalidation (`ops->invalidate`), a migration
 * (`drm_pagemap_populate_mm` / `drm_gpusvm_range_evict`), an eviction, a
 * garbage-collector pass (`xe_svm_garbage_collector`), a CPU/GPU scenario op,
 * a kernel page move (a CPU fault on device-private memory:
 * `migrate_to_ram`), and the run's verdict (a violation, a failed
 * expectation), the driver's `get-pages` and its successful `bind`s.
 *
 * Pure domain: no services.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"

const Int = Schema.Int
const NonNeg = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
/** An address: a whole number ≥ 0, up to 2^53 (a whole-space window's end, e.g. `exit`'s `[0, 2^53)`, is not a safe integer). */
const Addr = NonNeg

/** The fields every event has. */
const base = {
  /** Logical step counter (recording order). */
  seq: Int,
  /** The actor: `t0`, `t1`, …, `gc-worker`, `main`. */
  actor: Schema.String,
  /** The run's clock (virtual under the explorer), ms since the run began. */
  atMs: NonNeg,
  /** Wall-clock ms since recording began. */
  realMs: NonNeg,
  /** Duration of a spanned event (its clock), ms. */
  durMs: Schema.optionalKey(NonNeg),
  /** The scenario step path the actor was running. */
  step: Schema.optionalKey(Schema.String)
}

const kind = <K extends string>(k: K) => Schema.Literal(k)

/**
 * A GPU page fault handled by the driver (`xe_svm_handle_pagefault`): the
 * faulting address, access kind, and how many rounds of the fault loop were
 * retried (§11.5; `reason` when known).
 *
 * @category schemas
 * @since 0.2.0
 */
export const FaultEvent = Schema.Struct({
  ...base,
  kind: kind("fault"),
  addr: Addr,
  write: Schema.Boolean,
  atomic: Schema.Boolean,
  retries: Int,
  /** The range that served the fault, when the recorder saw it appear. */
  range: Schema.optionalKey(Schema.Struct({ start: Addr, end: Addr })),
  /** Why the last retry happened (errno name), when known. */
  reason: Schema.optionalKey(Schema.String),
  /** Why it retried: rounds per errno (`EAGAIN`, `EBUSY`, `EOPNOTSUPP`, `EFAULT`, `EPERM`), only those that occurred. */
  why: Schema.optionalKey(Schema.Record(Schema.String, Int)),
  /** The fault loop failed (typed error name). */
  error: Schema.optionalKey(Schema.String)
})

/**
 * A GPU SVM range created (`drm_gpusvm_range_find_or_insert` inserted it) or
 * removed (`drm_gpusvm_range_remove`); `pagemap` set when its pages are in
 * device memory.
 *
 * @category schemas
 * @since 0.2.0
 */
export const RangeEvent = Schema.Struct({
  ...base,
  kind: Schema.Literals(["range-created", "range-removed"]),
  id: Int,
  start: Addr,
  end: Addr,
  notifierStart: Addr
})

/**
 * A range's residency changed between two observations: `vram` (its pages
 * are device-private, `pagemap` set), `system` (DMA-mapped system pages),
 * `unmapped` (no valid pages: just created, invalidated or partially unmapped).
 *
 * @category schemas
 * @since 0.2.0
 */
export const RangeStateEvent = Schema.Struct({
  ...base,
  kind: kind("range-state"),
  id: Int,
  start: Addr,
  end: Addr,
  state: Schema.Literals(["system", "vram", "unmapped"])
})

/**
 * A notifier (`mmu_interval_notifier`) window inserted or removed.
 *
 * @category schemas
 * @since 0.2.0
 */
export const NotifierEvent = Schema.Struct({
  ...base,
  kind: Schema.Literals(["notifier-created", "notifier-removed"]),
  start: Addr,
  end: Addr
})

/**
 * A CPU mapping (VMA) appearing or going: `mmap`, `munmap`, `mremap`,
 * `mprotect` as the scenario's CPU side did them, and `exit` (everything).
 *
 * @category schemas
 * @since 0.2.0
 */
export const VmaEvent = Schema.Struct({
  ...base,
  kind: Schema.Literals(["vma-created", "vma-removed"]),
  start: Addr,
  end: Addr,
  prot: Schema.optionalKey(Schema.String)
})

/**
 * `drm_gpusvm_range_get_pages` (schema only; not recorded until a span marks it).
 *
 * @category schemas
 * @since 0.2.0
 */
export const GetPagesEvent = Schema.Struct({ ...base, kind: kind("get-pages"), start: Addr, end: Addr, error: Schema.optionalKey(Schema.String) })

/**
 * A GPU page-table bind of a range (`xe_vm_range_rebind`; schema only; not
 * recorded until a span marks it).
 *
 * @category schemas
 * @since 0.2.0
 */
export const BindEvent = Schema.Struct({ ...base, kind: kind("bind"), start: Addr, end: Addr })

/**
 * One driver invalidation callback (`ops->invalidate`, §10.3): the MMU
 * notifier event, `[start, end)` and the notifier window; `owner` when the
 * event names one (`MMU_NOTIFY_MIGRATE`).
 *
 * @category schemas
 * @since 0.2.0
 */
export const InvalidationEvent = Schema.Struct({
  ...base,
  kind: kind("invalidation"),
  event: Schema.String,
  start: Addr,
  end: Addr,
  notifier: Schema.String,
  owner: Schema.optionalKey(Schema.String)
})

/**
 * A driver migration of `[start, end)` (`to_vram`: `drm_pagemap_populate_mm`;
 * `to_ram`: `drm_gpusvm_range_evict`), `bytes` long.
 *
 * @category schemas
 * @since 0.2.0
 */
export const MigrationEvent = Schema.Struct({
  ...base,
  kind: kind("migration"),
  direction: Schema.Literals(["to_vram", "to_ram"]),
  start: Addr,
  end: Addr,
  bytes: Int
})

/**
 * Device memory evicted (`drm_pagemap` eviction: pages moved back to RAM
 * to free VRAM), `count` evictions since the last observation.
 *
 * @category schemas
 * @since 0.2.0
 */
export const EvictionEvent = Schema.Struct({ ...base, kind: kind("eviction"), count: Int, bytes: Int })

/**
 * One garbage-collector pass (`xe_svm_garbage_collector`, §10.2) over `ranges` queued ranges.
 *
 * @category schemas
 * @since 0.2.0
 */
export const GcEvent = Schema.Struct({ ...base, kind: kind("gc"), ranges: Int })

/**
 * A scenario op (the CPU side — `mmap`, `cpu-write`, … — or a GPU access
 * the scenario asked for: `gpu-read`, `gpu-fault`, `prefetch`, …), with its
 * thread and index.
 *
 * @category schemas
 * @since 0.2.0
 */
export const OpEvent = Schema.Struct({
  ...base,
  kind: kind("op"),
  op: Schema.String,
  thread: Int,
  index: Int,
  error: Schema.optionalKey(Schema.String)
})

/**
 * Pages the kernel moved on its own (not a driver migration): device-private
 * pages migrated back on a CPU fault (`dev_pagemap_ops.migrate_to_ram`), seen
 * as device→RAM traffic outside any `migration` event.
 *
 * @category schemas
 * @since 0.2.0
 */
export const PageMoveEvent = Schema.Struct({
  ...base,
  kind: kind("page-move"),
  direction: Schema.Literals(["to_vram", "to_ram"]),
  bytes: Int
})

/**
 * The machine's counters after an event changed them: VRAM in use, live DMA
 * mappings, bytes migrated each way so far (the report plots them).
 *
 * @category schemas
 * @since 0.2.0
 */
export const SampleEvent = Schema.Struct({
  ...base,
  kind: kind("sample"),
  vramUsed: Int,
  dmaLive: Int,
  bytesToVram: Int,
  bytesToRam: Int
})

/**
 * An invariant violation (design.md §8) or an unmet expectation, as the
 * run's result lists them (recorded at the end of the run; `step` for a
 * failure is the step that failed).
 *
 * @category schemas
 * @since 0.2.0
 */
export const VerdictEvent = Schema.Struct({
  ...base,
  kind: Schema.Literals(["violation", "failure"]),
  what: Schema.String,
  detail: Schema.String
})

/**
 * One event of a run.
 *
 * @category schemas
 * @since 0.2.0
 */
export const RunEvent = Schema.Union([
  FaultEvent,
  RangeEvent,
  RangeStateEvent,
  NotifierEvent,
  VmaEvent,
  GetPagesEvent,
  BindEvent,
  InvalidationEvent,
  MigrationEvent,
  EvictionEvent,
  GcEvent,
  OpEvent,
  PageMoveEvent,
  SampleEvent,
  VerdictEvent
])

/**
 * One event of a run.
 *
 * @category models
 * @since 0.2.0
 */
export type RunEvent = typeof RunEvent.Type

/**
 * The `kind` of an event.
 *
 * @category models
 * @since 0.2.0
 */
export type RunEventKind = RunEvent["kind"]

/**
 * An event before the recorder numbers and timestamps it (what a source hands it).
 *
 * @category models
 * @since 0.2.0
 */
export type RunEventBody = RunEvent extends infer E ? E extends RunEvent ? Omit<E, "seq" | "atMs" | "realMs" | "actor"> & { readonly actor?: string } : never : never

const decodeLine = Schema.decodeUnknownExit(Schema.fromJsonString(RunEvent))

/**
 * Decodes one line of an `--events` JSONL file (strict: unknown kinds and
 * missing fields rejected).
 *
 * @category parsing
 * @since 0.2.0
 */
export const decodeEventLine = (line: string) => decodeLine(line, { errors: "all", onExcessProperty: "error" })

/**
 * The events as JSONL (one JSON object per line, a final newline).
 *
 * @category formatting
 * @since 0.2.0
 */
export const toJsonl = (events: ReadonlyArray<RunEvent>): string => events.map((e) => JSON.stringify(e)).join("\n") + (events.length > 0 ? "\n" : "")
