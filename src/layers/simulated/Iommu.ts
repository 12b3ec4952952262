/**
 * The IOMMU model behind the simulated `Dma` service (`dma_map_page` through an
 * IOMMU domain, with `CONFIG_DMA_API_DEBUG`-like checks).
 *
 * - IOVAs come from a bump allocator starting at `iovaBase`, each aligned to
 *   its mapping's size; an IOVA is never handed out twice, so it is never
 *   reused while live (nor after).
 * - The live table maps IOVA page → `{ pfn, order, dir }`; every base page a live
 *   mapping covers is counted in `Frames.dmaRefs`, which is how a frame freed
 *   while still mapped is detected (`frame-freed-while-mapped`).
 * - {@link Iommu.translate} is what a simulated device uses to reach memory:
 *   `undefined` means an IOMMU fault (no live mapping), to be recorded by the
 *   caller.
 *
 * Plain synchronous code; the `Dma` service serialises nothing else (each call
 * is one synchronous step).
 *
 * @since 0.1.0
 */
import { PAGE_SIZE, orderBytes, orderPages } from "../../domain/Address.ts"
import type { DmaDirection } from "../../domain/DeviceAddress.ts"
import type { Frames } from "./Frames.ts"
import { PageSlots } from "./PageSlots.ts"

/**
 * One live IOMMU mapping.
 *
 * @category models
 */
export interface IommuMapping {
  readonly iova: number
  readonly pfn: number
  readonly order: number
  readonly dir: DmaDirection
}

/**
 * The IOMMU domain of the device.
 *
 * @category models
 */
export class Iommu {
  /**
   * Live mappings by IOVA page (`iova / PAGE_SIZE`; IOVAs are page aligned): page slots, not a
   * `Map`, as every DMA map / unmap inserts and deletes one (issue #16: the churn of a 64 MiB
   * prefetch made `Map` rehashing a tenth of the run).
   */
  private readonly table = new PageSlots<IommuMapping>()
  private nextIova: number
  private readonly orders = new Set<number>()
  private readonly frames: Frames

  constructor(frames: Frames, iovaBase: number) {
    this.frames = frames
    this.nextIova = iovaBase
  }

  /** Maps `2^order` pages from `pfn`; returns the IOVA. The caller validated the frame. */
  map(pfn: number, order: number, dir: DmaDirection): number {
    const size = orderBytes(order)
    const iova = Math.ceil(this.nextIova / size) * size
    this.nextIova = iova + size
    this.table.set(iova / PAGE_SIZE, { iova, pfn, order, dir })
    this.orders.add(order)
    const n = orderPages(order)
    this.frames.dmaRefs.add(pfn, n, 1)
    return iova
  }

  /** Unmaps the live mapping at exactly `iova` with `order`; `undefined` if there is none (the caller records it). */
  unmap(iova: number, order: number): IommuMapping | undefined {
    const m = iova % PAGE_SIZE === 0 ? this.table.get(iova / PAGE_SIZE) : undefined
    if (m === undefined || m.order !== order) return undefined
    this.table.delete(iova / PAGE_SIZE)
    const n = orderPages(m.order)
    this.frames.dmaRefs.add(m.pfn, n, -1)
    return m
  }

  /** IOVA → base pfn and byte offset in it, through a live mapping; `undefined` is an IOMMU fault. */
  translate(iova: number): { readonly pfn: number; readonly offset: number; readonly mapping: IommuMapping } | undefined {
    for (const order of this.orders) {
      const size = orderBytes(order)
      const base = iova - (iova % size)
      const m = this.table.get(base / PAGE_SIZE)
      if (m !== undefined && m.order === order) {
        const within = iova - base
        return { pfn: m.pfn + Math.floor(within / PAGE_SIZE), offset: within % PAGE_SIZE, mapping: m }
      }
    }
    return undefined
  }

  /** The live mapping at exactly `iova`, if any. */
  mappingAt(iova: number): IommuMapping | undefined {
    return iova % PAGE_SIZE === 0 ? this.table.get(iova / PAGE_SIZE) : undefined
  }

  /** Number of live mappings. */
  get size(): number {
    return this.table.size
  }
}
