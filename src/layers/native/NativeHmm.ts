/**
 * The native `Hmm` service: `hmm_range_fault` (kernel-semantics §8) as
 * `MADV_POPULATE_READ` / `MADV_POPULATE_WRITE` in the helper (EFAULT like
 * `hmm_range_fault`; it breaks COW for writes) followed by one read of
 * `/proc/<pid>/pagemap` decoded through a `Uint32Array` view.
 *
 * In order: the shared prologue (`layers/common/HmmPrologue.ts`: a pending
 * `hmmBusy` injection → `Busy`; malformed window or a gone address space →
 * `BadAddress`; notifier already moved → `Busy`). With
 * `fault`: holes, PROT_NONE and special VMAs → `BadAddress`, a write request
 * on a read-only VMA → `PermissionDenied`; device-resident allocations not
 * owned by `devicePrivateOwner` migrate back first (populate on a
 * MISSING-registered range would only give EFAULT); owned ones are reported
 * as device pages (read-only after a fork of the process, and migrated back
 * for a write — kernel-semantics §11.17). A write fault over pages a fork
 * shares (present, not exclusive, private writable VMA) raises CLEAR over
 * them first, as the COW break does (the caller's notifier then moved:
 * `Busy`, and the retry finds the pages exclusive). Entries: present → a system page (`write` = VMA writable
 * and the page mapped exclusively or shared; pagemap has no PTE write bit),
 * `order` 9 for an aligned block of 512 present pages with contiguous PFNs
 * starting 2 MiB aligned; absent → not valid; holes without `fault` → error
 * entries. A present page with PFN 0 is `BadAddress` naming `PfnHidden`.
 * Finally, a moved notifier → `Busy`; otherwise the window's pagemap words are
 * kept for `readRetry`'s re-check. `makeDeviceExclusive` (kernel-semantics
 * §11.17) is refused with `InvalidArgument` ({@link NATIVE_NO_EXCLUSIVE}).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { HUGE_PAGE_ORDER, PAGE_SIZE } from "../../domain/Address.ts"
import { BadAddress, type Busy, InvalidArgument, PermissionDenied } from "../../domain/Errors.ts"
import { type HmmPfn, NOT_VALID } from "../../domain/HmmPfn.ts"
import type { Vma } from "../../domain/Vma.ts"
import { Hmm, type HmmRange } from "../../services/Hmm.ts"
import { checkHmmFault, hmmPrologue, movedDuringWalk } from "../common/HmmPrologue.ts"
import type { DeviceAlloc, NativeState } from "./NativeState.ts"
import { errnoText } from "./NativeState.ts"
import { isExclusive, isPresent, pfnOf } from "./Proc.ts"

/**
 * The reason of the native machine's refusal of `makeDeviceExclusive` (kernel-semantics §11.17).
 *
 * @category constants
 */
export const NATIVE_NO_EXCLUSIVE =
  "make_device_exclusive: not supported on the native machine (device-exclusive access needs an in-kernel driver; the helper has none)"

const ERROR_ENTRY: HmmPfn = { valid: false, write: false, error: true, order: 0, page: undefined }
const HUGE = 512

const readable = (v: Vma): boolean => (v.prot.read || v.prot.write || v.prot.exec) && v.kind !== "special"

/**
 * Builds the `Hmm` service of machine `st`.
 *
 * @category functions
 */
export const makeHmm = (st: NativeState): Hmm["Service"] => {
  const pmOwner = st.config.devicePrivateOwner

  /** `[start, end)` minus the given allocations, as windows. */
  const outside = (start: number, end: number, allocs: ReadonlyArray<DeviceAlloc>): Array<readonly [number, number]> => {
    const out: Array<readonly [number, number]> = []
    let at = start
    for (const a of allocs) {
      if (a.start > at) out.push([at, Math.min(a.start, end)])
      at = Math.max(at, a.end)
    }
    if (at < end) out.push([at, end])
    return out.filter(([s, e]) => s < e)
  }

  const populate = (s: number, e: number, write: boolean): Effect.Effect<void, BadAddress | PermissionDenied> =>
    Effect.flatMap(st.requestAddr("hmm_range_fault", "populate", [s, e - s, write ? 1 : 0], s), (r): Effect.Effect<void, BadAddress | PermissionDenied> => {
      if (r.ok === 1) return Effect.void
      if (r.err === "EPERM" || r.err === "EACCES") return Effect.fail(new PermissionDenied({ reason: `hmm_range_fault: populate: ${errnoText(r)}`, addr: s }))
      return Effect.fail(new BadAddress({ reason: `hmm_range_fault: populate: ${errnoText(r)}`, addr: s }))
    })

  /** Are all pages of `[s, e)` present (and writable-as-reported for `write`)? A pagemap read error answers no. */
  const satisfied = (s: number, e: number, write: boolean): boolean => {
    try {
      const w = st.proc.pagemapRaw(s, e)
      const shared = write && st.intersecting(s, e).every((v) => v.shared)
      for (let i = 1; i < w.length; i += 2) {
        const hi = w[i]!
        if (!isPresent(hi) || (write && !shared && !isExclusive(hi))) return false
      }
      return true
    } catch {
      return false
    }
  }

  /** The walk: one entry per page from the pagemap words and the owned allocations. */
  const walk = (r: HmmRange, owned: ReadonlyArray<DeviceAlloc>, words: Uint32Array): Array<HmmPfn> | BadAddress => {
    const npages = (r.end - r.start) / PAGE_SIZE
    const out: Array<HmmPfn> = new Array(npages).fill(ERROR_ENTRY)
    for (const v of st.intersecting(r.start, r.end)) {
      const s = Math.max(r.start, v.start)
      const e = Math.min(r.end, v.end)
      const ok = readable(v)
      for (let va = s; va < e; va += PAGE_SIZE) {
        const i = (va - r.start) / PAGE_SIZE
        if (!ok) continue
        const a = owned.find((x) => x.start <= va && va < x.end)
        if (a !== undefined && a.gone[(va - a.start) / PAGE_SIZE] === 0) {
          out[i] = {
            valid: true,
            // §11.17: after a fork the device-private entry is read-only (make_readable_device_private_entry)
            write: v.prot.write && !a.cow,
            error: false,
            order: 0,
            page: { _tag: "Device", pagemap: st.config.pagemapId, devicePfn: (a.devAddr + (va - a.start)) / PAGE_SIZE, allocation: a.id, owner: pmOwner }
          }
          continue
        }
        const lo = words[2 * i]!
        const hi = words[2 * i + 1]!
        if (!isPresent(hi)) {
          out[i] = NOT_VALID
          continue
        }
        const pfn = pfnOf(lo, hi)
        if (pfn === 0) return new BadAddress({ reason: "hmm_range_fault: PfnHidden: present page with PFN 0 (no CAP_SYS_ADMIN)", addr: va })
        out[i] = { valid: true, write: v.prot.write && (v.shared || isExclusive(hi)), error: false, order: 0, page: { _tag: "System", pfn } }
      }
    }
    // order 9 for intact, physically contiguous, 2 MiB-aligned blocks (a PMD mapping)
    for (let i = (HUGE - ((r.start / PAGE_SIZE) % HUGE)) % HUGE; i + HUGE <= npages; i += HUGE) {
      const first = out[i]!
      if (!first.valid || first.page?._tag !== "System" || first.page.pfn % HUGE !== 0) continue
      const base = first.page.pfn
      let intact = true
      for (let k = 1; k < HUGE && intact; k++) {
        const e = out[i + k]!
        intact = e.valid && e.page?._tag === "System" && e.page.pfn === base + k && e.write === first.write
      }
      if (intact) for (let k = 0; k < HUGE; k++) out[i + k] = { ...out[i + k]!, order: HUGE_PAGE_ORDER }
    }
    return out
  }

  const rangeFault = Effect.fnUntraced(function*(r: HmmRange): Effect.fn.Return<ReadonlyArray<HmmPfn>, Busy | BadAddress | PermissionDenied> {
    const early = hmmPrologue(st, r)
    if (early !== undefined) return yield* early
    const mine = r.devicePrivateOwner !== undefined && r.devicePrivateOwner === pmOwner
    if (r.fault) {
      const err = checkHmmFault(st.intersecting(r.start, r.end), r.start, r.end, r.write)
      if (err !== undefined) return yield* err
      for (const a of st.allocsIn(r.start, r.end)) {
        // foreign owner: back to RAM first; §11.17: a write to a read-only (forked) device-private entry
        // goes through migrate_to_ram (do_swap_page), which breaks the COW back to RAM
        if (!mine || (r.write && a.cow)) yield* st.migrateBack(a.start, a.end)
      }
      const owned = mine ? st.allocsIn(r.start, r.end) : []
      if (r.write) {
        // §11.17: a write fault on pages a fork shares breaks the COW (wp_page_copy): CLEAR first, like the Cpu's store
        const cow = yield* Effect.sync(() => {
          try {
            return st.cowExtent(r.start, r.end)
          } catch {
            return undefined
          }
        })
        if (cow !== undefined) yield* st.notifiers.invalidate(cow[0], cow[1], "clear", Effect.void)
      }
      for (const [s, e] of outside(r.start, r.end, owned)) {
        // a fault of present (and, for writes, exclusively mapped or shared) pages changes nothing: skip the round trip
        if (!(yield* Effect.sync(() => satisfied(s, e, r.write)))) yield* populate(s, e, r.write)
      }
    }
    const owned = mine ? st.allocsIn(r.start, r.end) : []
    const words = yield* Effect.try({
      try: () => st.proc.pagemapRaw(r.start, r.end),
      catch: (e) => new BadAddress({ reason: `hmm_range_fault: pagemap: ${String(e)}`, addr: r.start })
    })
    const out = walk(r, owned, words)
    if (out instanceof BadAddress) return yield* out
    const moved = movedDuringWalk(st, r)
    if (moved !== undefined) return yield* moved
    st.snapshots.set(r.notifier.id, { seq: r.notifierSeq, start: r.start, end: r.end, words })
    return out
  })

  /**
   * kernel-semantics §11.17: `make_device_exclusive` is a kernel-internal call the helper cannot reach
   * (no driver of ours runs in the kernel), so the native machine refuses it with a typed error.
   */
  const makeDeviceExclusive = (start: number, _end: number, _owner: string) =>
    Effect.fail(new InvalidArgument({ reason: NATIVE_NO_EXCLUSIVE, addr: start }))

  return Hmm.of({ rangeFault, makeDeviceExclusive })
}
