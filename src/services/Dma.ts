/**
 * `Dma`: the DMA API for system pages (`dma_map_page`, `dma_unmap_page`).
 *
 * @since 0.1.0
 */
import type { Now } from "../domain/Now.ts"
import { Context, type Effect } from "effect"
import type { DeviceAddress, DmaDirection } from "../domain/DeviceAddress.ts"
import type { BadAddress } from "../domain/Errors.ts"
import type { PageRef } from "../domain/PageRef.ts"

/**
 * What the caller of `mapPage` knows about the page, passed to the DMA model
 * (an addition: the kernel's `dma_map_page` gets no such hint). `addr` is the
 * CPU virtual address the page is mapped at and `end` the exclusive end of the
 * caller's CPU window (the GPU SVM range). With it the simulated IOMMU checks
 * what no real one can: a mapping of more pages than `[addr, end)` holds
 * exposes memory outside the range to the device (CVE-2025-40336), and a
 * mapping the device may write (`bidirectional`, `from-device`) of a page the
 * CPU maps read-only lets the device write a read-only page (kernel-semantics
 * §11.16). Each is recorded as a violation, not refused.
 *
 * @category models
 */
export interface DmaMapHint {
  readonly addr: number
  readonly end: number
}

/**
 * The device's view of system memory.
 *
 * @category services
 */
export class Dma extends Context.Service<Dma, {
  /** `dma_map_page(dev, page, 0, PAGE_SIZE << order, dir)`: `BadAddress` on `dma_mapping_error` or a non-system page. */
  readonly mapPage: (page: PageRef, order: number, dir: DmaDirection, hint?: DmaMapHint) => Effect.Effect<DeviceAddress, BadAddress>
  /** `dma_unmap_page`: an address that matches no live mapping is recorded as a violation, never thrown. */
  readonly unmapPage: (addr: DeviceAddress) => Effect.Effect<void>
  /**
   * Fast path of `mapPage` (issue #16, `src/domain/Now.ts`): the mapping made in the calling step, or
   * `NOT_NOW` — nothing mapped, nothing recorded — when the call would fail (an injected failure
   * included) or pass a schedule point. Absent on machines that cannot answer synchronously.
   */
  readonly mapPageNow?: (page: PageRef, order: number, dir: DmaDirection, hint?: DmaMapHint) => Now<DeviceAddress>
  /** Fast path of `unmapPage` for an address `mapPageNow` returned: done in the calling step, or `NOT_NOW` when a schedule point would be passed. */
  readonly unmapPageNow?: (addr: DeviceAddress) => Now<void>
  /** Number of live mappings. */
  readonly liveMappings: Effect.Effect<number>
}>()("gpusvm/Dma") {}
