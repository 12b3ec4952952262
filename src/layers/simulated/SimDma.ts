/**
 * The simulated `Dma` service: `dma_map_page` / `dma_unmap_page` through the
 * machine's IOMMU model (`Iommu.ts`), with DMA-API-debug-like checks.
 *
 * - `mapPage`: a schedule yield point; a pending `dmaMapFail` injection, a
 *   non-system page, a bad order, or a page run that is not inside one live
 *   frame fail with `BadAddress` (`dma_mapping_error`); mapping a freed
 *   (poisoned) frame also records `dma-map-freed-frame`. Otherwise a fresh,
 *   size-aligned IOVA.
 * - The caller's optional {@link DmaMapHint} (`addr`, `end`: where the page is
 *   mapped and the end of the caller's GPU SVM range) enables two checks no
 *   real IOMMU can make, both recorded as violations, neither refusing the
 *   mapping (the kernel maps it; kernel-semantics §11.16):
 *   `dma-map-past-range` — the mapping covers more pages than `[addr, end)`
 *   holds, so the device reaches memory outside the range (the detail names
 *   CVE-2025-40336: the 6.17 huge-PTE order that is not clamped to the range;
 *   checked before the frame check, so it is recorded even when the run also
 *   leaves its frame and the map fails); `readonly-mapped-bidirectional` — a
 *   mapping the device may write (`bidirectional`, `from-device`) of a page in
 *   a VMA without write permission, or of the shared zero page (6.17 maps
 *   read-only ranges bidirectional; 7.0 maps them `to-device`).
 * - `unmapPage`: an address that matches no live mapping (IOVA and order), or a
 *   non-system protocol, is recorded as `dma-unmap-unknown`, never thrown.
 * - Freeing a frame while a live mapping covers it records
 *   `frame-freed-while-mapped` (see `Frames.ts`).
 *
 * DMA mappings do not hold frame references (as in the kernel): keeping pages
 * alive while mapped is the caller's (GPU SVM's) job, and the violation shows
 * when it fails to.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { hex, orderPages, PAGE_SIZE } from "../../domain/Address.ts"
import { type DeviceAddress, type DmaDirection, SYSTEM_PROTO } from "../../domain/DeviceAddress.ts"
import { BadAddress } from "../../domain/Errors.ts"
import { NOT_NOW, type Now, withNow } from "../../domain/Now.ts"
import type { PageRef } from "../../domain/PageRef.ts"
import { Dma, type DmaMapHint } from "../../services/Dma.ts"
import type { MachineState } from "./MachineState.ts"
import { afterPoint } from "./SeededYields.ts"

const DIRS: ReadonlyArray<DmaDirection> = ["bidirectional", "to-device", "from-device"]

/**
 * Builds the `Dma` service of machine `st`.
 *
 * @category functions
 */
export const makeDma = (st: MachineState): Dma["Service"] => {
  const point = st.schedule.at("dma")

  /** The hint checks (see the module comment): violations only, never a refusal. */
  const checkHint = (pfn: number, order: number, dir: DmaDirection, hint: DmaMapHint): void => {
    if (typeof hint !== "object" || hint === null || !Number.isSafeInteger(hint.addr) || !Number.isSafeInteger(hint.end)) return
    const n = orderPages(order)
    const room = Math.floor((hint.end - hint.addr) / PAGE_SIZE)
    if (n > room) {
      st.recordViolation({
        invariant: "dma-map-past-range",
        detail: `CVE-2025-40336: dma_map_page of ${n} pages (order ${order}) from pfn ${pfn} at ${hex(hint.addr)}, ` +
          `but the caller's range ends at ${hex(hint.end)} (${room} pages left): the device can reach ${n - room} pages outside the range`
      })
    }
    if (dir !== "to-device") {
      const vma = st.vmas.find(hint.addr)
      if (pfn === 0 || (vma !== undefined && !vma.prot.write)) {
        st.recordViolation({
          invariant: "readonly-mapped-bidirectional",
          detail: `dma_map_page ${dir} of ${pfn === 0 ? "the shared zero page" : `pfn ${pfn}`} at ${hex(hint.addr)}` +
            `${pfn !== 0 ? ", in a VMA without write permission" : ""}: the device may write a page the CPU maps read-only`
        })
      }
    }
  }

  /**
   * `dma_map_page`'s refusals before the hint checks, without side effects: the reason, and the pfn when
   * it is a freed frame (also a violation, recorded by the caller that fails).
   */
  const refusalBefore = (page: PageRef, order: number, dir: DmaDirection): { readonly reason: string; readonly freed?: number } | undefined => {
    if (typeof page !== "object" || page === null || page._tag !== "System") return { reason: "dma_map_page: page is not a system page" }
    if (!Number.isSafeInteger(order) || order < 0 || order > 18) return { reason: "dma_map_page: order must be an integer in [0, 18]" }
    if (!DIRS.includes(dir)) return { reason: "dma_map_page: dir is not a DMA direction" }
    const pfn = page.pfn
    if (!Number.isSafeInteger(pfn) || pfn < 0) return { reason: "dma_map_page: page.pfn is not a pfn" }
    if (st.frames.isFreed(pfn)) return { reason: `dma_map_page: pfn ${pfn} is a freed frame`, freed: pfn }
    return undefined
  }

  /** Its refusals after the hint checks (the page's frame), without side effects. */
  const refusalAfter = (pfn: number, order: number): string | undefined => {
    const n = orderPages(order)
    if (pfn === 0) return order !== 0 ? "dma_map_page: the zero page is a single 4 KiB page" : undefined
    const f = st.frames.frameOf(pfn)
    if (f === undefined) return `dma_map_page: pfn ${pfn} is not a live frame`
    if (pfn % n !== 0 || pfn + n > f.head + orderPages(f.order)) return `dma_map_page: ${n} pages from pfn ${pfn} are not inside one frame`
    return undefined
  }

  const mapSync = (page: PageRef, order: number, dir: DmaDirection, hint: DmaMapHint | undefined): DeviceAddress | BadAddress => {
    if (st.inject.dmaMapFail > 0) {
      st.inject.dmaMapFail--
      return new BadAddress({ reason: "dma_map_page: dma_mapping_error (injected)" })
    }
    const before = refusalBefore(page, order, dir)
    if (before !== undefined) {
      if (before.freed !== undefined) st.recordViolation({ invariant: "dma-map-freed-frame", detail: `dma_map_page of freed pfn ${before.freed}` })
      return new BadAddress({ reason: before.reason })
    }
    const pfn = (page as { pfn: number }).pfn
    if (hint !== undefined) checkHint(pfn, order, dir, hint)
    const after = refusalAfter(pfn, order)
    if (after !== undefined) return new BadAddress({ reason: after })
    return { addr: st.iommu.map(pfn, order, dir), proto: SYSTEM_PROTO, order, dir }
  }

  /** The fast path (issue #16): `NOT_NOW` before any side effect where `mapSync` would refuse or a point would be passed. */
  const mapPageNow = (page: PageRef, order: number, dir: DmaDirection, hint?: DmaMapHint): Now<DeviceAddress> => {
    if (point !== Effect.void || st.inject.dmaMapFail > 0 || refusalBefore(page, order, dir) !== undefined) return NOT_NOW
    const pfn = (page as { pfn: number }).pfn
    if (refusalAfter(pfn, order) !== undefined) return NOT_NOW
    if (hint !== undefined) checkHint(pfn, order, dir, hint)
    return { addr: st.iommu.map(pfn, order, dir), proto: SYSTEM_PROTO, order, dir }
  }

  const mapOne = (page: PageRef, order: number, dir: DmaDirection, hint: DmaMapHint | undefined) => {
    const r = mapSync(page, order, dir, hint)
    return r instanceof BadAddress ? Effect.fail(r) : Effect.succeed(r)
  }
  // Without a schedule or explorer the point is `Effect.void` and skipped (SeededYields.afterPoint); the
  // mapping is still made when the effect runs, never when it is built.
  const mapPage = (page: PageRef, order: number, dir: DmaDirection, hint?: DmaMapHint): Effect.Effect<DeviceAddress, BadAddress> =>
    point === Effect.void ? Effect.suspend(() => mapOne(page, order, dir, hint)) : Effect.flatMap(point, () => mapOne(page, order, dir, hint))

  const unmapSync = (addr: DeviceAddress): void => {
    const ok = typeof addr === "object" && addr !== null && addr.proto === SYSTEM_PROTO &&
      st.iommu.unmap(addr.addr, addr.order) !== undefined
    if (!ok) {
      st.recordViolation({
        invariant: "dma-unmap-unknown",
        detail: `dma_unmap_page of ${JSON.stringify(addr)}: no live mapping at that IOVA and order`
      })
    }
  }
  const unmapPage = (addr: DeviceAddress): Effect.Effect<void> => afterPoint(point, () => Effect.sync(() => unmapSync(addr)))
  const unmapPageNow = (addr: DeviceAddress): Now<void> => (point === Effect.void ? unmapSync(addr) : NOT_NOW)

  const liveMappings = Effect.flatMap(point, () => Effect.sync(() => st.iommu.size))

  return withNow(Dma.of({ mapPage, unmapPage, liveMappings }), { mapPageNow, unmapPageNow })
}
