/**
 * The plain imperative model of the GPU first-touch fault path: the
 * denominator of the fault-path ratios in `npm run bench` (issue #16). It does
 * the same work as gpusvm's simulated stack for a first-touch storm — notifier
 * lookup or creation, range lookup, chunk selection (kernel-semantics §3: the
 * largest configured chunk inside the VMA and notifier that overlaps no range),
 * a CPU page-table walk with fault-in, one DMA map per page into an IOMMU table,
 * and the GPU bind of every page — on Maps and arrays, with no services, no
 * Effect and no locking. With `migrate` it also moves every range into VRAM
 * (a buddy-free bump allocator and one `Uint8Array.set` per range) and binds
 * device addresses instead of DMA mappings, as policy `always` does.
 *
 * A test (`test/bench/plainModel.test.ts`) checks that for the same storm it
 * ends with the same ranges and the same bound GPU pages as the real stack.
 */

const PAGE = 4096

/** The model's configuration. */
export interface PlainConfig {
  /** Descending chunk sizes ending in 4096. */
  readonly chunkSizes: ReadonlyArray<number>
  /** Notifier window size (a power of two). */
  readonly notifierSize: number
  /** Migrate every range into VRAM (policy `always`). */
  readonly migrate: boolean
  /** VRAM bytes (with `migrate`). */
  readonly vramBytes: number
}

interface PlainRange {
  readonly start: number
  readonly end: number
}

/** The plain model: one process with VMAs, one GPU SVM instance, one GPU. */
export class PlainModel {
  readonly config: PlainConfig
  private readonly vmas: Array<{ readonly start: number; readonly end: number }> = []
  /** notifier index → its ranges, by start. */
  private readonly notifiers = new Map<number, Map<number, PlainRange>>()
  /** range lookup: page index → range (the interval tree's job, on a Map). */
  private readonly rangeOfPage = new Map<number, PlainRange>()
  /** CPU page table: page index → pfn. */
  private readonly cpuPt = new Map<number, number>()
  /** IOMMU: iova → pfn. */
  private readonly iommu = new Map<number, number>()
  /** GPU page table: page index → DMA or device address. */
  readonly gpuPt = new Map<number, number>()
  private nextPfn = 1
  private nextIova = 0x1000_0000
  private vramUsed = 0
  private readonly vram: Uint8Array
  private readonly frames = new Map<number, Uint8Array>()
  private readonly zero = new Uint8Array(PAGE)
  faults = 0

  constructor(config: PlainConfig) {
    this.config = config
    this.vram = new Uint8Array(config.migrate ? config.vramBytes : 0)
  }

  /** `mmap`: a new anonymous VMA. */
  mmap(start: number, length: number): void {
    this.vmas.push({ start, end: start + length })
  }

  /** The GPU touches `addr`: a fault when its page is not bound. */
  access(addr: number): void {
    if (this.gpuPt.has(Math.floor(addr / PAGE))) return
    this.fault(addr)
  }

  private fault(addr: number): void {
    this.faults++
    const vma = this.vmas.find((v) => v.start <= addr && addr < v.end)
    if (vma === undefined) throw new Error("no VMA")
    const ns = this.config.notifierSize
    const ni = Math.floor(addr / ns)
    let ranges = this.notifiers.get(ni)
    if (ranges === undefined) {
      ranges = new Map()
      this.notifiers.set(ni, ranges)
    }
    let range = this.rangeOfPage.get(Math.floor(addr / PAGE))
    if (range === undefined) {
      const nStart = ni * ns
      const nEnd = nStart + ns
      for (const size of this.config.chunkSizes) {
        const start = Math.floor(addr / size) * size
        const end = start + size
        if (start < vma.start || end > vma.end || start < nStart || end > nEnd) continue
        if (size !== PAGE && this.overlaps(start, end)) continue
        range = { start, end }
        break
      }
      if (range === undefined) throw new Error("no chunk fits")
      ranges.set(range.start, range)
      for (let p = range.start / PAGE; p < range.end / PAGE; p++) this.rangeOfPage.set(p, range)
    }
    // get_pages: walk the CPU page table, faulting pages in
    const first = range.start / PAGE
    const n = (range.end - range.start) / PAGE
    const pfns = new Array<number>(n)
    for (let i = 0; i < n; i++) {
      let pfn = this.cpuPt.get(first + i)
      if (pfn === undefined) {
        pfn = this.nextPfn++
        this.cpuPt.set(first + i, pfn)
      }
      pfns[i] = pfn
    }
    if (this.config.migrate && this.vramUsed + n * PAGE <= this.vram.length) {
      // migrate: copy the range's bytes into VRAM and bind device addresses
      const at = this.vramUsed
      this.vramUsed += n * PAGE
      for (let i = 0; i < n; i++) this.vram.set(this.frames.get(pfns[i]!) ?? this.zero, at + i * PAGE)
      for (let i = 0; i < n; i++) this.gpuPt.set(first + i, at + i * PAGE)
      return
    }
    // DMA-map every page, then bind
    for (let i = 0; i < n; i++) {
      const iova = this.nextIova
      this.nextIova += PAGE
      this.iommu.set(iova, pfns[i]!)
      this.gpuPt.set(first + i, iova)
    }
  }

  private overlaps(start: number, end: number): boolean {
    for (let p = start / PAGE; p < end / PAGE; p++) if (this.rangeOfPage.has(p)) return true
    return false
  }

  /** The live ranges, by start. */
  ranges(): ReadonlyArray<readonly [number, number]> {
    const out: Array<readonly [number, number]> = []
    for (const rs of this.notifiers.values()) for (const r of rs.values()) out.push([r.start, r.end])
    return out.sort((a, b) => a[0] - b[0])
  }
}

/** First GPU touch of every `chunk` of a `bytes` buffer at `base`: µs per fault. */
export const plainStorm = (config: PlainConfig, base: number, bytes: number, chunk: number): { readonly usPerFault: number; readonly model: PlainModel } => {
  const model = new PlainModel(config)
  model.mmap(base, bytes)
  const t0 = performance.now()
  for (let off = 0; off < bytes; off += chunk) model.access(base + off)
  const ms = performance.now() - t0
  return { usPerFault: (ms * 1000) / model.faults, model }
}
