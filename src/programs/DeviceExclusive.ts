/**
 * `DeviceExclusive`: the driver's use of device-exclusive access for GPU
 * atomics on system memory (kernel-semantics §11.17), as nouveau's SVM does
 * (`nouveau_atomic_range_fault`: `make_device_exclusive`, then map the page
 * with the atomic bit); Xe has no such path (the `systemAtomics` driver
 * option, default `"native"`).
 *
 * - {@link take}: `make_device_exclusive` of a window under the mmap read lock,
 *   owned by the driver, so its own EXCLUSIVE events are skipped by the
 *   invalidation callback ({@link ownEvent}).
 * - {@link atomicWindow}: which system-memory PTEs a bind gives the atomic bit.
 * - {@link makeExclusive}: the explicit request over a whole window (the
 *   scenario step `make-exclusive`, `lib/test_hmm.c`'s `HMM_DMIRROR_EXCLUSIVE`):
 *   one exclusive fault per GPU SVM range the window crosses.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import { PAGE_SIZE } from "../domain/Address.ts"
import type { BadAddress, Busy, GpuFaultError, InvalidArgument } from "../domain/Errors.ts"
import type { MmuRange } from "../domain/MmuRange.ts"
import type { Hmm } from "../services/Hmm.ts"
import type { Mm } from "../services/Mm.ts"
import type { DriverState } from "./DriverState.ts"

/**
 * The `make_device_exclusive` owner of a driver without device memory (no device-private owner).
 *
 * @category constants
 */
export const FALLBACK_OWNER = "gpusvm-driver"

/**
 * The owner the driver passes to `make_device_exclusive`: its device-private owner, else
 * {@link FALLBACK_OWNER} (nouveau passes its `drm->dev`).
 *
 * @category functions
 */
export const ownerOf = (st: DriverState): string => st.owner ?? FALLBACK_OWNER

/**
 * Is `r` the EXCLUSIVE event of the driver's own `make_device_exclusive`
 * (`range->owner == drm->dev` in nouveau's invalidation callback)? The callback
 * returns at once for it: the device is taking the page, not losing it. A
 * revocation (`remove_device_exclusive_entry`) has no owner and is handled like
 * any other invalidation.
 *
 * @category functions
 */
export const ownEvent = (st: DriverState, r: MmuRange): boolean => r.event === "exclusive" && r.owner === ownerOf(st)

/**
 * `make_device_exclusive` of every page of `[start, end)` for the driver, under
 * the mmap read lock (as `dmirror_exclusive` and nouveau hold it). Errors: the
 * `Hmm` service's (`Busy` when a page changed under the call: retry).
 *
 * @category functions
 */
export const take = (
  st: DriverState,
  hmm: Hmm["Service"],
  mm: Mm["Service"],
  start: number,
  end: number
): Effect.Effect<void, BadAddress | Busy | InvalidArgument> => mm.withReadLock(hmm.makeDeviceExclusive(start, end, ownerOf(st)))

/**
 * The `atomicWindow` of a bind (the `Gpu.bind` option): with `systemAtomics`
 * `"exclusive"` only the pages just taken exclusively (`taken`, else none);
 * with `"native"` undefined (every PTE may do atomics) unless pages were taken
 * explicitly.
 *
 * @category functions
 */
export const atomicWindow = (st: DriverState, taken?: readonly [number, number]): readonly [number, number] | undefined =>
  taken ?? (st.options.systemAtomics === "exclusive" ? NO_ATOMICS : undefined)

const NO_ATOMICS: readonly [number, number] = [0, 0]

/**
 * The explicit request: every page of `[start, end)` device-exclusive and
 * mapped for GPU atomics, range by range (`fault(addr, windowEnd)` resolves one
 * exclusive fault at `addr` over `[addr, windowEnd)` clipped to its range and
 * returns the range's end). Page aligned outward. Errors: the fault path's
 * `GpuFaultError`.
 *
 * @category functions
 */
export const makeExclusive = (
  fault: (addr: number, windowEnd: number) => Effect.Effect<number, GpuFaultError>,
  start: number,
  end: number
): Effect.Effect<void, GpuFaultError> => {
  const s = Math.floor(start / PAGE_SIZE) * PAGE_SIZE
  const e = Math.ceil(end / PAGE_SIZE) * PAGE_SIZE
  const step = (at: number): Effect.Effect<void, GpuFaultError> =>
    at >= e ? Effect.void : Effect.flatMap(fault(at, e), (next) => step(Math.max(next, at + PAGE_SIZE)))
  return step(s)
}
