/**
 * `Dma`: the DMA API for system pages (`dma_map_page`, `dma_unmap_page`).
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { DeviceAddress, DmaDirection } from "../domain/DeviceAddress.ts"
import type { BadAddress } from "../domain/Errors.ts"
import type { PageRef } from "../domain/PageRef.ts"

/** The device's view of system memory. */
export class Dma extends Context.Service<Dma, {
  /** `dma_map_page(dev, page, 0, PAGE_SIZE << order, dir)`: `BadAddress` on `dma_mapping_error` or a non-system page. */
  readonly mapPage: (page: PageRef, order: number, dir: DmaDirection) => Effect.Effect<DeviceAddress, BadAddress>
  /** `dma_unmap_page`: an address that matches no live mapping is recorded as a violation, never thrown. */
  readonly unmapPage: (addr: DeviceAddress) => Effect.Effect<void>
  /** Number of live mappings. */
  readonly liveMappings: Effect.Effect<number>
}>()("gpusvm/Dma") {}
