/**
 * The event fiber of a native machine: drains the helper's ordered inbox of
 * userfaultfd events and workload replies (see `Helper.ts`), one at a time.
 *
 * - A workload reply is delivered (the waiting `Cpu` call resumes) only after
 *   every event before it was handled: a command's invalidations reach the
 *   notifier callbacks before the command returns.
 * - `pf` (a CPU fault on MISSING-registered, device-resident memory): the
 *   pagemap migrates the allocation back with UFFDIO_COPY (or zero-fills).
 * - `unmap`, `remove`, `remap`, `fork`: inside a change Node raised itself →
 *   a confirmation (the cross-check); otherwise an unsolicited change,
 *   raised here as UNMAP / CLEAR / UNMAP of the old range / PROTECTION_PAGE
 *   (REMOVE arrives before the zap like `invalidate_range_start`; UNMAP and
 *   REMAP arrive after the VMA is gone).
 *
 * @since 0.1.0
 */
import { Effect, Queue } from "effect"
import { ADDRESS_LIMIT } from "../../domain/Address.ts"
import type { MmuEvent } from "../../domain/MmuRange.ts"
import type { InboxItem, UffdEvent } from "./Helper.ts"
import type { NativePagemap } from "./NativePagemap.ts"
import type { NativeState } from "./NativeState.ts"

/**
 * Handles one uffd event.
 *
 * @category functions
 */
export const handleEvent = (st: NativeState, pm: NativePagemap, ev: UffdEvent): Effect.Effect<void> =>
  Effect.suspend(() => {
    st.uffd.events++
    st.uffd.byKind[ev.ev] = (st.uffd.byKind[ev.ev] ?? 0) + 1
    if (ev.ev === "pf") {
      st.uffd.pagefaults++
      return pm.resolveFault(ev.addr, ev.flags)
    }
    if (ev.ev === "other") return Effect.void
    let start: number
    let end: number
    let event: MmuEvent
    if (ev.ev === "remap") {
      start = ev.from
      end = ev.from + ev.len
      event = "unmap"
    } else if (ev.ev === "fork") {
      start = 0
      end = ADDRESS_LIMIT
      event = "protection-page"
    } else {
      start = ev.start
      end = ev.end
      event = ev.ev === "unmap" ? "unmap" : "clear"
    }
    if (st.isExpected(start, end)) {
      st.uffd.confirmed++
      return Effect.void
    }
    st.uffd.unsolicited++
    st.touchMaps()
    if (event === "unmap") {
      st.removeWorkload(start, end)
      for (const a of st.allocsIn(start, end)) if (start <= a.start && a.end <= end) st.allocs.delete(a.id)
    }
    return st.notifiers.invalidate(start, end, event, Effect.void)
  })

/**
 * The loop (runs until interrupted with the machine's scope).
 *
 * @category functions
 */
export const eventLoop = (st: NativeState, pm: NativePagemap, inbox: Queue.Queue<InboxItem>): Effect.Effect<never> =>
  Effect.forever(
    Effect.flatMap(Queue.take(inbox), (item) =>
      item._tag === "Reply"
        ? Effect.sync(item.deliver)
        : Effect.catchCause(handleEvent(st, pm, item.event), (cause) =>
          Effect.sync(() => st.recordViolation({ invariant: "uffd-event-failed", detail: `${item.event.ev}: ${String(cause)}` }))))
  )
