/**
 * Pure functions over a run's events for the report (issue #19): the verdict
 * to mark, the events that led to it, the metric series to plot.
 *
 * @since 0.3.0
 */
import type { RunEvent, VerdictEvent } from "../domain/RunEvent.ts"

/**
 * The first violation of the run, else its first failed expectation.
 *
 * @category analysis
 * @since 0.3.0
 */
export const verdictOf = (events: ReadonlyArray<RunEvent>): typeof VerdictEvent.Type | undefined => {
  let failure: typeof VerdictEvent.Type | undefined
  for (const e of events) {
    if (e.kind === "violation") return e
    if (e.kind === "failure" && failure === undefined) failure = e
  }
  return failure
}

/**
 * The address window an event touches, if it has one.
 *
 * @category functions
 */
export const windowOf = (e: RunEvent): readonly [number, number] | undefined => {
  switch (e.kind) {
    case "fault":
      return e.range !== undefined ? [e.range.start, e.range.end] : [e.addr, e.addr + 1]
    case "range-created":
    case "range-removed":
    case "range-state":
    case "notifier-created":
    case "notifier-removed":
    case "vma-created":
    case "vma-removed":
    case "get-pages":
    case "bind":
    case "invalidation":
    case "migration":
      return [e.start, e.end]
    default:
      return undefined
  }
}

/**
 * The addresses a verdict's text names (`0x…` numbers).
 *
 * @category analysis
 * @since 0.3.0
 */
export const addressesIn = (text: string): ReadonlyArray<number> =>
  [...text.matchAll(/0x[0-9a-fA-F]+/g)].map((m) => Number(m[0])).filter((n) => Number.isSafeInteger(n))

const NOISE = new Set(["sample", "vma-removed", "notifier-removed"])

/**
 * The events that led to the verdict, by `seq`: those before it that touch an
 * address the verdict names (a fault, an invalidation or a migration over it,
 * its range appearing or changing state), plus every event of the step a
 * failed expectation names; whole-space events (exit's `[0, max)`) only when
 * nothing narrower matched. At most `limit` (the latest). Without a verdict:
 * none. With a verdict naming no address and no step: the last events of the
 * actors before it.
 *
 * @category analysis
 * @since 0.3.0
 */
export const leadingEvents = (events: ReadonlyArray<RunEvent>, limit = 40): ReadonlyArray<number> => {
  const v = verdictOf(events)
  if (v === undefined) return []
  const addrs = addressesIn(v.detail)
  const step = v.kind === "failure" ? v.step : undefined
  const picked: Array<number> = []
  for (const e of events) {
    if (e.seq >= v.seq || e.kind === "violation" || e.kind === "failure" || NOISE.has(e.kind)) continue
    if (step !== undefined && e.step === step && e.actor === v.actor) {
      picked.push(e.seq)
      continue
    }
    const w = windowOf(e)
    if (w === undefined || w[1] - w[0] > 2 ** 40) continue
    if (addrs.some((a) => w[0] <= a && a < w[1])) picked.push(e.seq)
  }
  if (picked.length === 0) {
    for (let i = events.length - 1; i >= 0 && picked.length < 8; i--) {
      const e = events[i]!
      if (e.seq < v.seq && e.kind !== "sample" && e.kind !== "violation" && e.kind !== "failure") picked.push(e.seq)
    }
    picked.reverse()
  }
  return picked.slice(-limit)
}

/**
 * The metric series of the run, one point per event (x = `seq`): cumulative
 * faults, fault-loop retries, invalidations, GC passes, bytes migrated to VRAM
 * and to RAM, VRAM in use and live DMA mappings (the last sample's value).
 *
 * @category analysis
 * @since 0.3.0
 */
export interface Series {
  readonly x: Array<number>
  readonly faults: Array<number>
  readonly retries: Array<number>
  /** Cumulative fault-loop retries per reason (errno), from the fault events' `why`. */
  readonly retriesBy: Record<string, Array<number>>
  readonly invalidations: Array<number>
  readonly gc: Array<number>
  readonly bytesToVram: Array<number>
  readonly bytesToRam: Array<number>
  readonly vramUsed: Array<number>
  readonly dmaLive: Array<number>
}

/** The retry reasons the fault loop counts (errno names, scenarios.md `faultRetries`). */
const RETRY_REASONS = ["EAGAIN", "EBUSY", "EOPNOTSUPP", "EFAULT", "EPERM"] as const

/**
 * The series of {@link Series} for `events`.
 *
 * @category analysis
 * @since 0.3.0
 */
export const seriesOf = (events: ReadonlyArray<RunEvent>): Series => {
  const reasons = RETRY_REASONS
  const retriesBy: Record<string, Array<number>> = Object.fromEntries(reasons.map((r) => [r, [] as Array<number>]))
  const s: Series = { x: [], faults: [], retries: [], retriesBy, invalidations: [], gc: [], bytesToVram: [], bytesToRam: [], vramUsed: [], dmaLive: [] }
  let faults = 0, retries = 0, inv = 0, gc = 0, toV = 0, toR = 0, used = 0, dma = 0
  const by: Record<string, number> = Object.fromEntries(reasons.map((r) => [r, 0]))
  for (const e of events) {
    if (e.kind === "fault") {
      faults++
      retries += e.retries
      for (const [r, n] of Object.entries(e.why ?? {})) by[r] = (by[r] ?? 0) + n
    } else if (e.kind === "invalidation") inv++
    else if (e.kind === "gc") gc++
    else if (e.kind === "sample") {
      toV = e.bytesToVram
      toR = e.bytesToRam
      used = e.vramUsed
      dma = e.dmaLive
    }
    s.x.push(e.seq)
    s.faults.push(faults)
    s.retries.push(retries)
    for (const r of reasons) retriesBy[r]!.push(by[r] ?? 0)
    s.invalidations.push(inv)
    s.gc.push(gc)
    s.bytesToVram.push(toV)
    s.bytesToRam.push(toR)
    s.vramUsed.push(used)
    s.dmaLive.push(dma)
  }
  return s
}
