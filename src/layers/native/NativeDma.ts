/**
 * The native `Dma` service: there is no device and no IOMMU here
 * (native-linux.md §4), so a "DMA address" is the page's physical address,
 * `PFN << 12`, typed `iommu: "none"`. It is a checking oracle: the native GPU
 * reaches a system page only through a live mapping of its physical address
 * whose PFN the page-table walk (pagemap) still shows at that virtual address.
 *
 * - `mapPage`: `BadAddress` for a pending `dmaMapFail` injection, a
 *   non-system page, a bad order, or PFN 0 (`PfnHidden`: no CAP_SYS_ADMIN).
 * - `unmapPage`: an address that matches no live mapping is recorded as
 *   `dma-unmap-unknown`, never thrown.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { PAGE_SIZE } from "../../domain/Address.ts"
import { type DeviceAddress, type DmaDirection, SYSTEM_PROTO } from "../../domain/DeviceAddress.ts"
import { BadAddress } from "../../domain/Errors.ts"
import type { PageRef } from "../../domain/PageRef.ts"
import { Dma } from "../../services/Dma.ts"
import type { NativeState } from "./NativeState.ts"

/**
 * A physical address handed out as a device address: no IOMMU in between.
 *
 * @category models
 */
export interface PhysAddr extends DeviceAddress {
  readonly iommu: "none"
}

const DIRS: ReadonlyArray<DmaDirection> = ["bidirectional", "to-device", "from-device"]

/**
 * Is the physical page at `phys` covered by a live mapping?
 *
 * @category functions
 */
export const isMapped = (st: NativeState, phys: number): boolean => (st.dmaPages.get(phys - (phys % PAGE_SIZE)) ?? 0) > 0

/**
 * Builds the `Dma` service of machine `st`.
 *
 * @category functions
 */
export const makeDma = (st: NativeState): Dma["Service"] => {
  const mapSync = (page: PageRef, order: number, dir: DmaDirection): PhysAddr | BadAddress => {
    if (st.inject.dmaMapFail > 0) {
      st.inject.dmaMapFail--
      return new BadAddress({ reason: "dma_map_page: dma_mapping_error (injected)" })
    }
    if (typeof page !== "object" || page === null || page._tag !== "System") return new BadAddress({ reason: "dma_map_page: page is not a system page" })
    if (!Number.isSafeInteger(order) || order < 0 || order > 18) return new BadAddress({ reason: "dma_map_page: order must be an integer in [0, 18]" })
    if (!DIRS.includes(dir)) return new BadAddress({ reason: "dma_map_page: dir is not a DMA direction" })
    if (!Number.isSafeInteger(page.pfn) || page.pfn < 0) return new BadAddress({ reason: "dma_map_page: page.pfn is not a pfn" })
    if (page.pfn === 0) return new BadAddress({ reason: "dma_map_page: PfnHidden: the PFN reads as 0 (no CAP_SYS_ADMIN)" })
    const addr = page.pfn * PAGE_SIZE
    const key = `${addr}:${order}`
    st.dmaByKey.set(key, (st.dmaByKey.get(key) ?? 0) + 1)
    for (let k = 0; k < 2 ** order; k++) {
      const p = addr + k * PAGE_SIZE
      st.dmaPages.set(p, (st.dmaPages.get(p) ?? 0) + 1)
    }
    st.dmaLive++
    return { addr, proto: SYSTEM_PROTO, order, dir, iommu: "none" }
  }

  const unmapSync = (a: DeviceAddress): void => {
    const key = typeof a === "object" && a !== null && a.proto === SYSTEM_PROTO ? `${a.addr}:${a.order}` : undefined
    const n = key === undefined ? undefined : st.dmaByKey.get(key)
    if (key === undefined || n === undefined) {
      st.recordViolation({ invariant: "dma-unmap-unknown", detail: `dma_unmap_page of ${JSON.stringify(a)}: no live mapping at that address and order` })
      return
    }
    if (n <= 1) st.dmaByKey.delete(key)
    else st.dmaByKey.set(key, n - 1)
    for (let k = 0; k < 2 ** a.order; k++) {
      const p = a.addr + k * PAGE_SIZE
      const c = st.dmaPages.get(p) ?? 0
      if (c <= 1) st.dmaPages.delete(p)
      else st.dmaPages.set(p, c - 1)
    }
    st.dmaLive--
  }

  return Dma.of({
    mapPage: (page, order, dir) =>
      Effect.suspend(() => {
        const r = mapSync(page, order, dir)
        return r instanceof BadAddress ? Effect.fail(r) : Effect.succeed(r)
      }),
    unmapPage: (a) => Effect.sync(() => unmapSync(a)),
    liveMappings: Effect.sync(() => st.dmaLive)
  })
}
