/**
 * Backing objects of shared and file mappings (`struct address_space`): the
 * page cache of each simulated file and the shmem object behind each shared
 * anonymous or shared hugetlb mapping.
 *
 * - A file is identified by its seed; its page cache persists across mappings
 *   (like a real file) until the address space exits. An unwritten file page
 *   reads as `fileByte(seed, offset)`; page-cache frames hold the cache
 *   reference (`Frame.cacheRef`).
 * - A shmem object belongs to one `mmap(MAP_SHARED | MAP_ANONYMOUS)` (or shared
 *   hugetlb) call; it is released, and its pages freed once unmapped, when no
 *   VMA refers to it any more.
 * - Hugetlb objects hold 2 MiB compound frames, keyed by 2 MiB index.
 *
 * Plain synchronous code under the mmap lock.
 *
 * @since 0.1.0
 */
import { HUGE_PAGE_ORDER, HUGE_PAGE_SIZE, PAGE_SIZE } from "../../domain/Address.ts"
import type { Frame, Frames } from "./Frames.ts"

/**
 * One backing object.
 *
 * @category models
 */
export interface MemObject {
  readonly id: number
  readonly kind: "file" | "shmem"
  /** File seed (files only). */
  readonly seed: number | undefined
  /** Holds 2 MiB frames (hugetlb). */
  readonly huge: boolean
  /** Frames by page index (or 2 MiB index when `huge`). */
  readonly pages: Map<number, Frame>
}

/**
 * The page cache of the machine.
 *
 * @category models
 */
export class PageCache {
  /** Objects by id. */
  readonly objects = new Map<number, MemObject>()
  private readonly files = new Map<number, MemObject>()
  private nextId = 1
  private readonly frames: Frames

  constructor(frames: Frames) {
    this.frames = frames
  }

  /** The file object of `seed` (created on first use). */
  file(seed: number): MemObject {
    let o = this.files.get(seed)
    if (o === undefined) {
      o = { id: this.nextId++, kind: "file", seed, huge: false, pages: new Map() }
      this.files.set(seed, o)
      this.objects.set(o.id, o)
    }
    return o
  }

  /** A new shmem object (`shmem_zero_setup`). */
  shmem(huge: boolean): MemObject {
    const o: MemObject = { id: this.nextId++, kind: "shmem", seed: undefined, huge, pages: new Map() }
    this.objects.set(o.id, o)
    return o
  }

  /**
   * `find_or_create_page` / `shmem_get_folio`: the base pfn holding byte
   * `offset` (page aligned) of object `o`, allocating the page (or the 2 MiB
   * frame) on first use.
   */
  pfnAt(o: MemObject, offset: number): { readonly frame: Frame; readonly pfn: number } {
    if (o.huge) {
      const idx = Math.floor(offset / HUGE_PAGE_SIZE)
      let f = o.pages.get(idx)
      if (f === undefined) {
        f = this.frames.alloc(HUGE_PAGE_ORDER)
        f.cacheRef = true
        o.pages.set(idx, f)
      }
      return { frame: f, pfn: f.head + (offset - idx * HUGE_PAGE_SIZE) / PAGE_SIZE }
    }
    const idx = Math.floor(offset / PAGE_SIZE)
    let f = o.pages.get(idx)
    if (f === undefined) {
      f = o.seed === undefined ? this.frames.alloc(0) : this.frames.alloc(0, { seed: o.seed, offset: idx * PAGE_SIZE })
      f.cacheRef = true
      o.pages.set(idx, f)
    }
    return { frame: f, pfn: f.head }
  }

  /** Drops object `id`: every page loses its cache reference (and is freed if unmapped). */
  release(id: number): void {
    const o = this.objects.get(id)
    if (o === undefined) return
    this.objects.delete(id)
    if (o.kind === "file" && o.seed !== undefined) this.files.delete(o.seed)
    for (const f of o.pages.values()) this.frames.uncache(f)
    o.pages.clear()
  }

  /** Releases every object (exit). */
  releaseAll(): void {
    for (const id of [...this.objects.keys()]) this.release(id)
  }
}
