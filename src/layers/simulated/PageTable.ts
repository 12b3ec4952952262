/**
 * The CPU page table of the simulated address space: one entry per mapped
 * 4 KiB virtual page, keyed by virtual page number in a `Map` (never an array
 * sized by the address space), so a 64 GiB mapping with a few pages touched
 * costs a few entries.
 *
 * An entry ({@link Pte}) is a union:
 * - `system`: a system page frame (`pfn`), whether the CPU may write through
 *   it (`writable`: false for the zero page, page-cache pages of private
 *   mappings, read-only VMAs), and the order of the mapping it belongs to
 *   (9 while a 2 MiB PMD mapping is intact, `pmd_trans_huge`; 0 after a split).
 * - `device`: **extension point** for device-private memory
 *   (`is_device_private_entry`): the CPU cannot reach the page; a CPU touch must
 *   migrate it back first (`migrate_to_ram`, the
 *   `MachineState.hooks.cpuTouchedDevicePage` hook). Nothing installs such
 *   entries yet, so the paths handling them are currently unreachable.
 *
 * Plain synchronous code; callers hold the mmap lock (reading for faults,
 * writing for unmaps/protection changes), like the kernel's PT lock nesting.
 *
 * @since 0.1.0
 */
import { HUGE_PAGE_SIZE, PAGE_SIZE } from "../../domain/Address.ts"

/** A present system-memory entry. Mutable in place (protection changes, splits, COW). */
export interface SystemPte {
  readonly kind: "system"
  pfn: number
  writable: boolean
  order: number
}

/**
 * A device-private entry (`swp_entry` of type DEVICE_PRIVATE): the page lives
 * in device memory `pagemap` at `devicePfn`, allocation `allocation`, owner
 * `owner`. Reserved for the VRAM work; nothing creates it yet.
 */
export interface DevicePte {
  readonly kind: "device"
  readonly pagemap: string
  readonly devicePfn: number
  readonly allocation: number
  readonly owner: string
  writable: boolean
  order: number
}

/** One page-table entry. */
export type Pte = SystemPte | DevicePte

/** Pages per 2 MiB block. */
export const HUGE_PAGES = HUGE_PAGE_SIZE / PAGE_SIZE

/** Virtual page number of an address (arithmetic). */
export const vpnOf = (addr: number): number => Math.floor(addr / PAGE_SIZE)

/** The page table. */
export class PageTable {
  /** Entries by virtual page number. */
  readonly entries = new Map<number, Pte>()

  /** The entry of virtual page `vpn`. */
  get(vpn: number): Pte | undefined {
    return this.entries.get(vpn)
  }

  /** Installs an entry. */
  set(vpn: number, pte: Pte): void {
    this.entries.set(vpn, pte)
  }

  /** Removes an entry. */
  delete(vpn: number): void {
    this.entries.delete(vpn)
  }

  /**
   * Visits every present entry with `startVpn <= vpn < endVpn` in ascending
   * order: by probing each vpn when the window is small, else by scanning the
   * map (so a 64 GiB window with few entries stays cheap).
   */
  forEachIn(startVpn: number, endVpn: number, f: (vpn: number, pte: Pte) => void): void {
    const n = endVpn - startVpn
    if (n <= this.entries.size * 4 + 64) {
      for (let v = startVpn; v < endVpn; v++) {
        const pte = this.entries.get(v)
        if (pte !== undefined) f(v, pte)
      }
      return
    }
    const hits: Array<number> = []
    for (const v of this.entries.keys()) if (v >= startVpn && v < endVpn) hits.push(v)
    hits.sort((a, b) => a - b)
    for (const v of hits) f(v, this.entries.get(v)!)
  }

  /**
   * `split_huge_pmd` of the 2 MiB block containing `vpn`: every entry of the
   * block drops to order 0 (same frames, same protection).
   */
  splitBlock(vpn: number): void {
    const head = vpn - (vpn % HUGE_PAGES)
    const first = this.entries.get(head)
    if (first === undefined || first.order === 0) return
    for (let v = head; v < head + HUGE_PAGES; v++) {
      const pte = this.entries.get(v)
      if (pte !== undefined) pte.order = 0
    }
  }

  /** Splits the huge mapping straddling `addr`, if `addr` is not 2 MiB aligned. */
  splitAt(addr: number): void {
    if (addr % HUGE_PAGE_SIZE !== 0) this.splitBlock(vpnOf(addr))
  }

  /** Number of present entries. */
  get size(): number {
    return this.entries.size
  }
}
