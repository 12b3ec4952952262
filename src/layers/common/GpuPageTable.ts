/**
 * The GPU page table both machines' GPUs use: one PTE per 4 KiB GPU virtual
 * page (device address, interconnect protocol, read-only bit), bound per range
 * and zapped per invalidation. Plain synchronous data; the GPU service around it
 * decides when a zap counts as a TLB flush.
 *
 * @since 0.1.0
 */
import { PAGE_SIZE } from "../../domain/Address.ts"
import type { DeviceAddress } from "../../domain/DeviceAddress.ts"

/**
 * One GPU PTE.
 *
 * @category models
 */
export interface GpuPte {
  readonly devAddr: number
  readonly proto: string
  readonly readOnly: boolean
  /** The atomic bit: may the GPU do atomics through this PTE (kernel-semantics §11.17)? */
  readonly atomic: boolean
}

/**
 * A GPU page table keyed by virtual page number (never an array sized by the address space).
 *
 * @category models
 */
export class GpuPageTable {
  private readonly ptes = new Map<number, GpuPte>()

  /** Number of live PTEs. */
  get size(): number {
    return this.ptes.size
  }

  /** The PTE of virtual page `vpn`. */
  get(vpn: number): GpuPte | undefined {
    return this.ptes.get(vpn)
  }

  /**
   * Binds `[rangeStart, rangeEnd)` to `addrs` (one entry per run of `2^order` pages, in order), replacing
   * older PTEs. With `atomicWindow`, system-memory PTEs (`systemProto`) outside it lack the atomic bit
   * (kernel-semantics §11.17); every other PTE has it.
   */
  bind(
    rangeStart: number,
    rangeEnd: number,
    addrs: ReadonlyArray<DeviceAddress>,
    readOnly: boolean,
    atomicWindow?: readonly [number, number],
    systemProto?: string
  ): void {
    let vpn = Math.floor(rangeStart / PAGE_SIZE)
    const endVpn = Math.ceil(rangeEnd / PAGE_SIZE)
    const lo = atomicWindow === undefined ? 0 : atomicWindow[0] / PAGE_SIZE
    const hi = atomicWindow === undefined ? Infinity : atomicWindow[1] / PAGE_SIZE
    for (const a of addrs) {
      const n = 2 ** a.order
      const system = a.proto === systemProto
      for (let k = 0; k < n && vpn < endVpn; k++, vpn++) {
        const atomic = !system || (vpn >= lo && vpn < hi)
        this.ptes.set(vpn, { devAddr: a.addr + k * PAGE_SIZE, proto: a.proto, readOnly, atomic })
      }
    }
  }

  /** Removes every PTE of `[start, end)` (by probing or by scanning, whichever is fewer steps). */
  zap(start: number, end: number): void {
    const first = Math.floor(start / PAGE_SIZE)
    const last = Math.ceil(end / PAGE_SIZE)
    if (last - first <= this.ptes.size) {
      for (let v = first; v < last; v++) this.ptes.delete(v)
    } else {
      for (const v of this.ptes.keys()) if (v >= first && v < last) this.ptes.delete(v)
    }
  }

  /** Is any PTE of `[start, end)` present? */
  isBound(start: number, end: number): boolean {
    const first = Math.floor(start / PAGE_SIZE)
    const last = Math.ceil(end / PAGE_SIZE)
    if (last - first <= this.ptes.size) {
      for (let v = first; v < last; v++) if (this.ptes.has(v)) return true
      return false
    }
    for (const v of this.ptes.keys()) if (v >= first && v < last) return true
    return false
  }
}
