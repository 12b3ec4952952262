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

/** Virtual pages per block of the table (one 2 MiB huge page's worth). */
const BLOCK_PAGES = 512
/** Flag bits of a PTE slot. */
const PRESENT = 1
const READ_ONLY = 2
const ATOMIC = 4

/** 512 consecutive PTE slots on typed arrays (issue #16: no per-page objects). */
interface Block {
  readonly devAddr: Float64Array
  readonly flags: Uint8Array
  /** Index of the slot's protocol in the table's protocol list. */
  readonly proto: Uint8Array
  live: number
}

/**
 * A GPU page table keyed by virtual page number (never an array sized by the address space): a Map of
 * 512-page blocks whose PTEs live in typed arrays; {@link GpuPageTable.get} builds the PTE object on
 * demand.
 *
 * @category models
 */
export class GpuPageTable {
  private readonly blocks = new Map<number, Block>()
  private readonly protos: Array<string> = []
  private live = 0

  /** Number of live PTEs. */
  get size(): number {
    return this.live
  }

  private protoIndex(proto: string): number {
    let i = this.protos.indexOf(proto)
    if (i < 0) {
      if (this.protos.length === 256) throw new Error("GpuPageTable: more than 256 interconnect protocols")
      i = this.protos.push(proto) - 1
    }
    return i
  }

  private block(b: number): Block {
    let blk = this.blocks.get(b)
    if (blk === undefined) {
      blk = { devAddr: new Float64Array(BLOCK_PAGES), flags: new Uint8Array(BLOCK_PAGES), proto: new Uint8Array(BLOCK_PAGES), live: 0 }
      this.blocks.set(b, blk)
    }
    return blk
  }

  /** The PTE of virtual page `vpn`. */
  get(vpn: number): GpuPte | undefined {
    const blk = this.blocks.get(Math.floor(vpn / BLOCK_PAGES))
    if (blk === undefined) return undefined
    const i = vpn % BLOCK_PAGES
    const f = blk.flags[i]!
    if ((f & PRESENT) === 0) return undefined
    return { devAddr: blk.devAddr[i]!, proto: this.protos[blk.proto[i]!]!, readOnly: (f & READ_ONLY) !== 0, atomic: (f & ATOMIC) !== 0 }
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
    const ro = readOnly ? READ_ONLY : 0
    let blk: Block | undefined
    let blkNo = -1
    for (const a of addrs) {
      const n = 2 ** a.order
      const system = a.proto === systemProto
      const proto = this.protoIndex(a.proto)
      for (let k = 0; k < n && vpn < endVpn; k++, vpn++) {
        const b = Math.floor(vpn / BLOCK_PAGES)
        if (b !== blkNo) {
          blk = this.block(b)
          blkNo = b
        }
        const i = vpn % BLOCK_PAGES
        const atomic = !system || (vpn >= lo && vpn < hi)
        if ((blk!.flags[i]! & PRESENT) === 0) {
          blk!.live++
          this.live++
        }
        blk!.flags[i] = PRESENT | ro | (atomic ? ATOMIC : 0)
        blk!.devAddr[i] = a.addr + k * PAGE_SIZE
        blk!.proto[i] = proto
      }
    }
  }

  /** Clears slots `[from, to)` of block `b` (an absent block has none). */
  private clear(b: number, from: number, to: number): void {
    const blk = this.blocks.get(b)
    if (blk === undefined) return
    for (let i = from; i < to; i++) {
      if ((blk.flags[i]! & PRESENT) !== 0) {
        blk.flags[i] = 0
        blk.live--
        this.live--
      }
    }
    if (blk.live === 0) this.blocks.delete(b)
  }

  /** Removes every PTE of `[start, end)` (by probing blocks or by scanning them, whichever is fewer steps). */
  zap(start: number, end: number): void {
    const first = Math.floor(start / PAGE_SIZE)
    const last = Math.ceil(end / PAGE_SIZE)
    if (last <= first) return
    const b0 = Math.floor(first / BLOCK_PAGES)
    const b1 = Math.floor((last - 1) / BLOCK_PAGES)
    if (b1 - b0 + 1 <= this.blocks.size) {
      for (let b = b0; b <= b1; b++) this.clear(b, b === b0 ? first % BLOCK_PAGES : 0, b === b1 ? ((last - 1) % BLOCK_PAGES) + 1 : BLOCK_PAGES)
    } else {
      for (const b of [...this.blocks.keys()]) {
        if (b >= b0 && b <= b1) this.clear(b, b === b0 ? first % BLOCK_PAGES : 0, b === b1 ? ((last - 1) % BLOCK_PAGES) + 1 : BLOCK_PAGES)
      }
    }
  }

  /** Is any PTE of `[start, end)` present? */
  isBound(start: number, end: number): boolean {
    const first = Math.floor(start / PAGE_SIZE)
    const last = Math.ceil(end / PAGE_SIZE)
    if (last <= first) return false
    const b0 = Math.floor(first / BLOCK_PAGES)
    const b1 = Math.floor((last - 1) / BLOCK_PAGES)
    const any = (b: number): boolean => {
      const blk = this.blocks.get(b)
      if (blk === undefined) return false
      const from = b === b0 ? first % BLOCK_PAGES : 0
      const to = b === b1 ? ((last - 1) % BLOCK_PAGES) + 1 : BLOCK_PAGES
      for (let i = from; i < to; i++) if ((blk.flags[i]! & PRESENT) !== 0) return true
      return false
    }
    if (b1 - b0 + 1 <= this.blocks.size) {
      for (let b = b0; b <= b1; b++) if (any(b)) return true
      return false
    }
    for (const b of this.blocks.keys()) if (b >= b0 && b <= b1 && any(b)) return true
    return false
  }
}
