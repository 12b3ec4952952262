/**
 * `/proc/<pid>` readers of the native machine, in plain Node (native-linux.md
 * §1): `maps` (regex parse), `smaps` on demand (hugetlb is classified from
 * `KernelPageSize`, not the path), `pagemap` decoded through a `Uint32Array`
 * view (no BigInt per entry), and `mem` reads/writes.
 *
 * Every function is synchronous (one or a few `pread`s of at most a few MiB,
 * well under a millisecond) and works only on the pid of the helper this
 * layer spawned: `ProcFiles` is opened from a pid the caller got from
 * `child_process.spawn`.
 *
 * @since 0.1.0
 */
import { closeSync, openSync, readFileSync, readSync, writeSync } from "node:fs"
import { PAGE_SIZE } from "../../domain/Address.ts"
import type { Vma, VmaKind } from "../../domain/Vma.ts"

/**
 * One line of `/proc/<pid>/maps`.
 *
 * @category models
 */
export interface MapsEntry {
  readonly start: number
  readonly end: number
  readonly read: boolean
  readonly write: boolean
  readonly exec: boolean
  readonly shared: boolean
  readonly offset: number
  readonly inode: number
  readonly path: string
}

const MAPS_LINE = /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) \S+ (\d+)\s*(.*)$/

/**
 * Parses the text of `/proc/<pid>/maps`.
 *
 * @category functions
 */
export const parseMaps = (text: string): Array<MapsEntry> => {
  const out: Array<MapsEntry> = []
  for (const line of text.split("\n")) {
    const m = MAPS_LINE.exec(line)
    if (m === null) continue
    out.push({
      start: parseInt(m[1]!, 16),
      end: parseInt(m[2]!, 16),
      read: m[3] === "r",
      write: m[4] === "w",
      exec: m[5] === "x",
      shared: m[6] === "s",
      offset: parseInt(m[7]!, 16),
      inode: Number(m[8]),
      path: m[9] ?? ""
    })
  }
  return out
}

/** Paths of anonymous memory as maps shows it (private anonymous, shared anonymous, heap, stack). */
const isAnonPath = (p: string): boolean =>
  p === "" || p === "[heap]" || p.startsWith("[stack") || p.startsWith("[anon") || p === "/dev/zero (deleted)" ||
  p.startsWith("/SYSV") || p.startsWith("/memfd:")

/** `[vdso]`, `[vvar]`, `[vsyscall]`, … : kernel-provided (VM_PFNMAP / VM_IO-like). */
const isSpecialPath = (p: string): boolean => p.startsWith("[") && !isAnonPath(p)

/**
 * A maps entry as a `Vma`; `hugetlb` says whether smaps reported a huge `KernelPageSize`.
 *
 * @category functions
 */
export const toVma = (e: MapsEntry, hugetlb: boolean): Vma => {
  const kind: VmaKind = hugetlb ? "hugetlb" : isAnonPath(e.path) ? "anonymous" : isSpecialPath(e.path) ? "special" : "file"
  const base = { start: e.start, end: e.end, prot: { read: e.read, write: e.write, exec: e.exec }, kind, shared: e.shared }
  return e.path === "" ? base : { ...base, name: e.path }
}

/**
 * Could this entry be hugetlb (only those get an smaps look-up)?
 *
 * @category functions
 */
export const maybeHugetlb = (e: MapsEntry): boolean => e.path.includes("anon_hugepage") || e.path.endsWith("(deleted)") && !isAnonPath(e.path)

/**
 * `KernelPageSize` (bytes) of every smaps block, by VMA start.
 *
 * @category functions
 */
export const parseSmapsPageSizes = (text: string): Map<number, number> => {
  const out = new Map<number, number>()
  let cur = -1
  for (const line of text.split("\n")) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ /.exec(line)
    if (head !== null) {
      cur = parseInt(head[1]!, 16)
      continue
    }
    const k = /^KernelPageSize:\s+(\d+) kB/.exec(line)
    if (k !== null && cur >= 0) out.set(cur, Number(k[1]) * 1024)
  }
  return out
}

/**
 * One decoded pagemap entry.
 *
 * @category models
 */
export interface PagemapEntry {
  readonly present: boolean
  readonly swapped: boolean
  /** Bit 61: file-backed or shared anonymous. */
  readonly fileShared: boolean
  /** Bit 56: mapped exclusively (map count 1). */
  readonly exclusive: boolean
  /** Bit 57: uffd write-protected. */
  readonly uffdWp: boolean
  /** Bits 0–54 (the PFN when present). */
  readonly pfn: number
}

const TWO32 = 2 ** 32

/**
 * Open files of one helper process (`/proc/<pid>/{pagemap,mem}`), closed by `close`.
 *
 * @category models
 */
export class ProcFiles {
  readonly pid: number
  private readonly pagemapFd: number
  private readonly memFd: number
  private closed = false

  constructor(pid: number) {
    this.pid = pid
    this.pagemapFd = openSync(`/proc/${pid}/pagemap`, "r")
    try {
      this.memFd = openSync(`/proc/${pid}/mem`, "r+")
    } catch (e) {
      closeSync(this.pagemapFd)
      throw e
    }
  }

  /** The text of `/proc/<pid>/maps`, parsed. */
  maps(): Array<MapsEntry> {
    return parseMaps(readFileSync(`/proc/${this.pid}/maps`, "utf8"))
  }

  /** `KernelPageSize` per VMA start, from `/proc/<pid>/smaps` (about 1 ms: on demand only). */
  smapsPageSizes(): Map<number, number> {
    return parseSmapsPageSizes(readFileSync(`/proc/${this.pid}/smaps`, "utf8"))
  }

  /**
   * Raw pagemap words of the pages of `[start, end)` as `[lo, hi]` u32 pairs
   * (one `pread`): decode with the accessors below, without a BigInt per entry.
   */
  pagemapRaw(start: number, end: number): Uint32Array {
    const n = (end - start) / PAGE_SIZE
    const buf = new Uint8Array(n * 8)
    let off = 0
    const pos = (start / PAGE_SIZE) * 8
    while (off < buf.length) {
      const got = readSync(this.pagemapFd, buf, off, buf.length - off, pos + off)
      if (got <= 0) break
      off += got
    }
    return new Uint32Array(buf.buffer, 0, n * 2)
  }

  /** Decoded entries of `[start, end)` (tests and oracles; the hot paths use `pagemapRaw`). */
  pagemap(start: number, end: number): Array<PagemapEntry> {
    const w = this.pagemapRaw(start, end)
    const out: Array<PagemapEntry> = []
    for (let i = 0; i < w.length; i += 2) out.push(decode(w[i]!, w[i + 1]!))
    return out
  }

  /** Reads `length` bytes of the process's memory at `addr` into `into` (EIO for an unmapped or device-resident page). */
  readMem(addr: number, into: Uint8Array): void {
    let off = 0
    while (off < into.length) {
      const got = readSync(this.memFd, into, off, into.length - off, addr + off)
      if (got <= 0) throw new Error(`short read of /proc/${this.pid}/mem at ${addr + off}`)
      off += got
    }
  }

  /** Writes `bytes` into the process's memory at `addr`. */
  writeMem(addr: number, bytes: Uint8Array): void {
    let off = 0
    while (off < bytes.length) {
      const put = writeSync(this.memFd, bytes, off, bytes.length - off, addr + off)
      if (put <= 0) throw new Error(`short write of /proc/${this.pid}/mem at ${addr + off}`)
      off += put
    }
  }

  /** Resident set size in pages (`/proc/<pid>/statm`, second field); 0 once gone. */
  rssPages(): number {
    try {
      return Number(readFileSync(`/proc/${this.pid}/statm`, "utf8").split(" ")[1] ?? 0)
    } catch {
      return 0
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    closeSync(this.pagemapFd)
    closeSync(this.memFd)
  }
}

/**
 * Present bit (63) of a pagemap word's high half.
 *
 * @category functions
 */
export const isPresent = (hi: number): boolean => (hi & 0x80000000) !== 0
/**
 * Exclusive bit (56).
 *
 * @category functions
 */
export const isExclusive = (hi: number): boolean => (hi & 0x01000000) !== 0
/**
 * The PFN (bits 0–54).
 *
 * @category functions
 */
export const pfnOf = (lo: number, hi: number): number => lo + (hi & 0x7fffff) * TWO32

/**
 * Decodes one pagemap word given as two u32 halves.
 *
 * @category functions
 */
export const decode = (lo: number, hi: number): PagemapEntry => ({
  present: isPresent(hi),
  swapped: (hi & 0x40000000) !== 0,
  fileShared: (hi & 0x20000000) !== 0,
  exclusive: isExclusive(hi),
  uffdWp: (hi & 0x02000000) !== 0,
  pfn: pfnOf(lo, hi)
})
