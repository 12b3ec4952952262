/**
 * The native machine's GPU (`Gpu` service): the simulated GPU's design — a
 * GPU page table (one PTE per 4 KiB page: device address, protocol,
 * read-only bit), a TLB-flush counter, an access engine for read / write /
 * 32-bit atomic increments, faults handed to the driver's handler — over a
 * real process.
 *
 * There is no IOMMU and no way to read memory by physical address here, so a
 * system-memory PTE holds the page's physical address (`Dma` = `PFN << 12`)
 * and is used as a checking oracle: each access first checks that a live
 * DMA mapping covers that physical page and that `/proc/<pid>/pagemap` still
 * shows that PFN at the virtual address; only then are the bytes read or
 * written through `/proc/<pid>/mem` at the virtual address. A mismatch is a
 * `stale-device-access` violation and a `GpuFaultError` (invariant 2: no
 * stale device access). Device-memory PTEs reach the pagemap's bytes
 * directly (synchronously, through the native pagemap's own accessors).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { hex, isAddress, PAGE_SIZE } from "../../domain/Address.ts"
import { SYSTEM_PROTO } from "../../domain/DeviceAddress.ts"
import type { DeviceAddress } from "../../domain/DeviceAddress.ts"
import { GpuFaultError } from "../../domain/Errors.ts"
import { type AccessMode, type FaultHandler, Gpu, type GpuStats } from "../../services/Gpu.ts"
import type { NativeState } from "./NativeState.ts"
import { isMapped } from "./NativeDma.ts"
import type { NativePagemap } from "./NativePagemap.ts"
import { isPresent, pfnOf } from "./Proc.ts"
import { GpuPageTable, type GpuPte } from "../common/GpuPageTable.ts"

/** Fault rounds per page before the access gives up (the handler itself retries internally). */
export const MAX_FAULTS_PER_PAGE = 4
/** Times a page's PTE may be zapped between its fault and its access before the access gives up. */
export const RETRY_ROUNDS = 16

const fail = GpuFaultError.of

/** Builds the GPU of machine `st`; `pagemaps` are the device memories it can reach directly. */
export const makeGpu = (st: NativeState, pagemaps: ReadonlyArray<NativePagemap>): Gpu["Service"] => {
  const ptes = new GpuPageTable()
  const stats = { faults: 0, tlbFlushes: 0, accesses: 0 }
  let handler: FaultHandler | undefined
  // Pagemaps sharing a protocol (several regions of one device) are told apart by device-physical address.
  const byProto = new Map<string, Array<NativePagemap>>()
  for (const p of pagemaps) byProto.set(p.proto, [...(byProto.get(p.proto) ?? []), p])
  const pagemapFor = (proto: string, at: number): NativePagemap | undefined => {
    const list = byProto.get(proto)
    if (list === undefined) return undefined
    return list.length === 1 ? list[0] : (list.find((p) => at >= p.dpaBase && at < p.dpaBase + p.totalBytes) ?? list[0])
  }

  const bind = (rangeStart: number, rangeEnd: number, addrs: ReadonlyArray<DeviceAddress>, o?: { readonly readOnly?: boolean }) =>
    Effect.sync(() => ptes.bind(rangeStart, rangeEnd, addrs, o?.readOnly === true))

  const invalidate = (start: number, end: number) =>
    Effect.sync(() => {
      ptes.zap(start, end)
      stats.tlbFlushes++
    })

  /** Marker: the PTE changed between the fault and the touch (zapped by an invalidation): look it up again. */
  const RETRY = 1 as const

  /**
   * Reads (into `out` at `outOff`) or writes (from `src`) `len` bytes of one
   * page through its PTE, or (`atomic`) increments the u32 there and stores
   * the old value in `out`; an error string on failure. One synchronous step
   * that first checks the PTE is still the one the fault produced, so an
   * invalidation either precedes it (→ `RETRY`) or follows it — never lands
   * in the middle (the hardware's per-access atomicity w.r.t. a TLB flush).
   */
  const touchSync = (
    va: number,
    pte: GpuPte,
    pageOff: number,
    len: number,
    out: Uint8Array | undefined,
    outOff: number,
    src: Uint8Array | undefined,
    srcOff: number,
    atomic: boolean
  ): string | undefined | typeof RETRY => {
    if (ptes.get(Math.floor(va / PAGE_SIZE)) !== pte) return RETRY
    const rmw = (read: (into: Uint8Array) => void, write: (from: Uint8Array) => void) => {
      if (atomic) {
        const old = new Uint8Array(4)
        read(old)
        const next = new Uint8Array(4)
        new DataView(next.buffer).setUint32(0, (new DataView(old.buffer).getUint32(0, true) + 1) % 2 ** 32, true)
        write(next)
        out!.set(old, outOff)
        return
      }
      if (out !== undefined) read(out.subarray(outOff, outOff + len))
      if (src !== undefined) write(src.subarray(srcOff, srcOff + len))
    }
    if (pte.proto === SYSTEM_PROTO) {
      const phys = pte.devAddr + pageOff
      if (!isMapped(st, phys)) return `DMA oracle: physical address ${hex(phys)} has no live mapping`
      if (!st.alive) return `the address space has exited`
      try {
        const w = st.proc.pagemapRaw(va, va + PAGE_SIZE)
        const pfn = isPresent(w[1]!) ? pfnOf(w[0]!, w[1]!) : -1
        if (pfn * PAGE_SIZE !== pte.devAddr) {
          return `DMA oracle: ${hex(va)} now maps ${pfn < 0 ? "no page" : `pfn ${hex(pfn)}`}, the PTE holds ${hex(pte.devAddr)}`
        }
        rmw((into) => st.proc.readMem(va + pageOff, into), (from) => st.proc.writeMem(va + pageOff, from))
      } catch (e) {
        return `access of ${hex(va)} through /proc/${st.helper.pid}/mem: ${String(e)}`
      }
      return undefined
    }
    const at = pte.devAddr + pageOff
    const pm = pagemapFor(pte.proto, at)
    if (pm === undefined) return `no device memory speaks protocol "${pte.proto}"`
    let err: string | undefined
    rmw((into) => {
      const r = pm.readSync(at, into.length)
      if (typeof r === "string") err ??= `VRAM read at ${hex(at)}: ${r}`
      else into.set(r)
    }, (from) => {
      if (err !== undefined) return
      const r = pm.writeSync(at, from)
      if (r !== undefined) err = `VRAM write at ${hex(at)}: ${r}`
    })
    return err
  }

  /** The PTE for `addr`, faulting it in as needed. */
  const pteFor = (addr: number, write: boolean, atomic: boolean) =>
    Effect.gen(function*() {
      const vpn = Math.floor(addr / PAGE_SIZE)
      for (let attempt = 0; attempt <= MAX_FAULTS_PER_PAGE; attempt++) {
        const pte = ptes.get(vpn)
        if (pte !== undefined && !((write || atomic) && pte.readOnly)) return pte
        if (attempt === MAX_FAULTS_PER_PAGE) break
        if (handler === undefined) return yield* fail(addr, "GPU page fault with no fault handler registered")
        stats.faults++
        yield* handler({ addr, write, atomic })
      }
      return yield* fail(addr, `page still not mapped after ${MAX_FAULTS_PER_PAGE} faults`)
    })

  const access = (addr: number, length: number, mode: AccessMode, bytes?: Uint8Array) =>
    Effect.gen(function*() {
      if (!isAddress(addr) || !Number.isSafeInteger(length) || length <= 0 || !isAddress(addr + length - 1)) {
        return yield* fail(addr, `bad GPU access [${addr}, +${length})`)
      }
      stats.accesses++
      if (mode === "atomic") {
        if (length !== 4 || addr % 4 !== 0) return yield* fail(addr, "atomic access must be 4 bytes, 4-byte aligned")
        const off = addr % PAGE_SIZE
        const old = new Uint8Array(4)
        for (let round = 0;; round++) {
          const pte = yield* pteFor(addr, true, true)
          const err = touchSync(addr - off, pte, off, 4, old, 0, undefined, 0, true)
          if (err === RETRY && round < RETRY_ROUNDS) continue
          if (err === RETRY) return yield* fail(addr, `PTE zapped ${RETRY_ROUNDS} times between fault and access`)
          if (err !== undefined) return yield* stale(addr, err)
          return old
        }
      }
      if (mode === "write" && (bytes === undefined || bytes.length < length)) {
        return yield* fail(addr, `write of ${length} bytes needs that many bytes`)
      }
      const out = mode === "read" ? new Uint8Array(length) : undefined
      let done = 0
      let retries = 0
      while (done < length) {
        const at = addr + done
        const off = at % PAGE_SIZE
        const len = Math.min(PAGE_SIZE - off, length - done)
        const pte = yield* pteFor(at, mode === "write", false)
        const err = touchSync(at - off, pte, off, len, out, done, mode === "write" ? bytes : undefined, done, false)
        if (err === RETRY) {
          if (++retries > RETRY_ROUNDS) return yield* fail(at, `PTE zapped ${RETRY_ROUNDS} times between fault and access`)
          continue
        }
        if (err !== undefined) return yield* stale(at, err)
        retries = 0
        done += len
      }
      return out
    })

  const stale = (addr: number, detail: string) =>
    Effect.andThen(
      Effect.sync(() => st.recordViolation({ invariant: "stale-device-access", detail: `GPU access at ${hex(addr)}: ${detail}` })),
      Effect.fail(fail(addr, detail))
    )

  return Gpu.of({
    access,
    bind,
    invalidate,
    setFaultHandler: (h) =>
      Effect.sync(() => {
        handler = h
      }),
    isBound: (start, end) => Effect.sync(() => ptes.isBound(start, end)),
    stats: Effect.sync((): GpuStats => ({ ...stats, ptesLive: ptes.size }))
  })
}
