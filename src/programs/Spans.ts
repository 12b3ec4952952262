/**
 * Trace spans at the driver's cold boundaries (design.md §7): one per GPU
 * fault (`gpusvm.fault`), garbage-collector pass (`gpusvm.gc`), invalidation
 * callback (`gpusvm.invalidate`), driver migration (`gpusvm.migrate`) and
 * scenario step (`gpusvm.step.<op>`). Never per page.
 *
 * Effect's spans are not free without an exporter: with no tracer installed
 * the default `Tracer.nativeTracer` still builds a `NativeSpan` per span (two
 * clock reads, the attributes set on it), and `Effect.fn("name")` also
 * captures a call-site `Error` per call. So these helpers wrap with
 * `Effect.withSpan` (no stack capture) and only when the fiber's tracer is not
 * the native one (`Tracer.nativeTracer` is documented as the way to detect "no
 * backend installed"); otherwise the effect runs as it is, its attributes never
 * computed. Installing any tracer (`OtlpTracer.layer`, `Effect.withTracer`, the
 * CLI's `--otlp` / `--trace`) turns them on.
 *
 * @since 0.1.0
 */
import { Effect, type Fiber, Tracer } from "effect"
import { hex } from "../domain/Address.ts"
import type { MmuRange } from "../domain/MmuRange.ts"
import type { Notifier } from "../domain/Notifier.ts"
import type { GpuPageFault } from "../services/Gpu.ts"
import * as Metrics from "./Metrics.ts"

/** Span attribute values (what OTLP serialises). */
type Attributes = Record<string, string | number | boolean>

/**
 * Is a tracer other than the built-in no-op one installed for `fiber` (so spans are recorded)? The fault
 * handler's synchronous fast path (issue #16) runs only when not, as it records no span.
 *
 * @category functions
 * @since 0.5.0
 */
export const tracing = (fiber: Fiber.Fiber<unknown, unknown>): boolean => fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer

/**
 * `self` inside a span `name` with `attributes()` (computed only when a tracer
 * is installed), plus `atEnd()`'s attributes when it ends; `self` unchanged
 * under the native tracer (no backend).
 *
 * @category combinators
 * @since 0.1.0
 */
export const span = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  name: string,
  attributes: () => Attributes,
  atEnd?: () => Attributes
): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    if (!tracing(fiber)) return self
    const body = atEnd === undefined ? self : Effect.onExit(self, () => Effect.annotateCurrentSpan(atEnd()))
    return Effect.withSpan(body, name, { attributes: attributes() })
  })

const retries = (m: Metrics.DriverMetrics): number => {
  let n = 0
  for (const r of Metrics.RETRY_REASONS) n += Metrics.faultRetriesTotal[r].valueUnsafe(m.context).count
  return n
}

/**
 * `gpusvm.fault`: one GPU page fault's loop in `FaultHandler.handle`, under
 * the driver SVM lock (the wait for the lock is outside the span, so the
 * retries counted are this fault's alone). Attributes `gpusvm.addr` (hex),
 * `gpusvm.write`, `gpusvm.atomic`, and at the end `gpusvm.retries` (fault-loop
 * rounds retried, bounded by `maxRetries`, §11.5) and `gpusvm.retries.<errno>`
 * per reason it retried on (why).
 *
 * @category spans
 * @since 0.1.0
 */
export const fault = <A, E, R>(m: Metrics.DriverMetrics, f: GpuPageFault, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  const before = new Map<string, number>()
  const count = (r: Metrics.RetryReason) => Metrics.faultRetriesTotal[r].valueUnsafe(m.context).count
  return span(
    self,
    "gpusvm.fault",
    () => {
      for (const r of Metrics.RETRY_REASONS) before.set(r, count(r))
      return { "gpusvm.addr": hex(f.addr), "gpusvm.write": f.write, "gpusvm.atomic": f.atomic }
    },
    () => {
      // why it retried: `gpusvm.retries.<errno>` for each reason this fault retried on
      const out: Record<string, number> = {}
      let total = 0
      for (const r of Metrics.RETRY_REASONS) {
        const n = count(r) - (before.get(r) ?? 0)
        if (n > 0) out[`gpusvm.retries.${r}`] = n
        total += n
      }
      return { "gpusvm.retries": total, ...out }
    }
  )
}

/**
 * `gpusvm.gc`: one garbage-collector pass over `ranges` queued ranges (§10.2, §11.2).
 *
 * @category spans
 * @since 0.1.0
 */
export const gc = <A, E, R>(ranges: number, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  span(self, "gpusvm.gc", () => ({ "gpusvm.ranges": ranges }))

/**
 * `gpusvm.invalidate`: one driver invalidation callback (`ops.invalidate`,
 * §10.3): the event, the MMU range and the notifier.
 *
 * @category spans
 * @since 0.1.0
 */
export const invalidate = <A, E, R>(notifier: Notifier, r: MmuRange, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  span(self, "gpusvm.invalidate", () => ({
    "gpusvm.event": r.event,
    "gpusvm.start": hex(r.start),
    "gpusvm.end": hex(r.end),
    "gpusvm.notifier": `${hex(notifier.start)}-${hex(notifier.end)}`,
    ...(r.owner === undefined ? {} : { "gpusvm.owner": r.owner })
  }))

/**
 * `gpusvm.migrate`: one driver migration of `[start, end)` in `direction`
 * (`to_vram`: `populateMm`), with its size in `gpusvm.bytes`.
 *
 * @category spans
 * @since 0.1.0
 */
export const migrate = <A, E, R>(
  direction: "to_vram" | "to_ram",
  start: number,
  end: number,
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  span(self, "gpusvm.migrate", () => ({
    "gpusvm.direction": direction,
    "gpusvm.start": hex(start),
    "gpusvm.end": hex(end),
    "gpusvm.bytes": end - start
  }))

/**
 * `gpusvm.step.<name>`: one scenario step, for `ScenarioRunner` (pipe a
 * step's effect through it: `step.pipe(stepSpan(op, { thread, index }))`).
 *
 * @category spans
 * @since 0.1.0
 */
export const stepSpan = (name: string, attributes: Attributes = {}) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  span(self, `gpusvm.step.${name}`, () => attributes)

/**
 * `gpusvm.get_pages`: one `drm_gpusvm_range_get_pages` of the fault handler
 * (`FaultHandler` round), attributes `gpusvm.start`, `gpusvm.end` (hex); its
 * error, if any, is the span's status.
 *
 * @category spans
 * @since 0.2.0
 */
export const getPages = <A, E, R>(start: number, end: number, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  span(self, "gpusvm.get_pages", () => ({ "gpusvm.start": hex(start), "gpusvm.end": hex(end) }))

/**
 * `gpusvm.bind`: the driver's bind of a range under the notifier lock
 * (`driver_bind_range`), attributes `gpusvm.start`, `gpusvm.end` (hex) and at
 * the end `gpusvm.bound` (false: the pages were invalidated first, `EAGAIN`).
 *
 * @category spans
 * @since 0.2.0
 */
export const bind = (start: number, end: number, self: Effect.Effect<boolean>): Effect.Effect<boolean> => {
  let bound = false
  return span(Effect.tap(self, (b) => Effect.sync(() => void (bound = b))), "gpusvm.bind", () => ({ "gpusvm.start": hex(start), "gpusvm.end": hex(end) }), () => ({ "gpusvm.bound": bound }))
}

