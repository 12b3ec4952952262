/**
 * The simulated GPU (`Gpu` service): a GPU page table (one PTE per 4 KiB page:
 * device address, protocol, read-only bit), a TLB-flush counter, and an access
 * engine for read / write / 32-bit atomic increments.
 *
 * A missing PTE (or a write/atomic through a read-only PTE) is a GPU page fault
 * handed to the registered fault handler, then the page is retried (at most
 * `MAX_FAULTS_PER_PAGE` times). A present PTE reaches system memory only
 * through the IOMMU model (`MachineState.translateIova`): an IOVA with no live
 * mapping, or a frame that was freed, is recorded as a `stale-device-access`
 * violation and the access fails with `GpuFaultError`. Device-memory PTEs reach
 * VRAM directly (the machine's device memory of that protocol and address).
 *
 * Each page is read/written in one synchronous step, so a concurrent
 * invalidation either precedes or follows it (the hardware's per-access
 * atomicity w.r.t. a TLB flush).
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { hex, isAddress, PAGE_SIZE } from "../../domain/Address.ts"
import { SYSTEM_PROTO } from "../../domain/DeviceAddress.ts"
import type { DeviceAddress } from "../../domain/DeviceAddress.ts"
import { GpuFaultError } from "../../domain/Errors.ts"
import { type AccessMode, type FaultHandler, Gpu, type GpuStats } from "../../services/Gpu.ts"
import { type MachineState, SimState } from "./MachineState.ts"
import type { Vram } from "./Vram.ts"
import { GpuPageTable, type GpuPte } from "../common/GpuPageTable.ts"

/** Fault rounds per page before the access gives up (the handler itself retries internally). */
export const MAX_FAULTS_PER_PAGE = 4

/** A failed page access: what went wrong, and whether it was already recorded as a violation. */
interface Failure {
  readonly detail: string
  readonly recorded: boolean
}

const mine = (detail: string): Failure => ({ detail, recorded: false })

const fail = GpuFaultError.of

/** Builds the GPU of machine `st`; it reaches the machine's device memories (`st.devmem`) directly. */
export const makeGpu = (st: MachineState): Gpu["Service"] => {
  const ptes = new GpuPageTable()
  const stats = { faults: 0, tlbFlushes: 0, accesses: 0 }
  let handler: FaultHandler | undefined
  // Under the explorer a bind is a step of its own (the GPU page-table update), so
  // that whatever the driver checked before it can be invalidated in between
  // unless the driver holds the notifier lock across both.
  const bindPoint = st.interleaving.controlled ? st.schedule.at("gpu.bind") : undefined
  const bind = (rangeStart: number, rangeEnd: number, addrs: ReadonlyArray<DeviceAddress>, o?: { readonly readOnly?: boolean }) => {
    const write = Effect.sync(() => ptes.bind(rangeStart, rangeEnd, addrs, o?.readOnly === true))
    return bindPoint === undefined ? write : Effect.andThen(bindPoint, write)
  }

  const invalidate = (start: number, end: number) =>
    Effect.sync(() => {
      ptes.zap(start, end)
      stats.tlbFlushes++
    })

  /** The device memory a device-physical address of protocol `proto` lies in. */
  const vramFor = (proto: string, dpa: number): Vram | undefined => {
    for (const v of st.devmem.byId.values()) if (v.proto === proto && v.ownsAddress(dpa)) return v
    return undefined
  }

  /**
   * One page's access, in ONE synchronous step: look the PTE up and read (into
   * `out` at `outOff`) or write (from `src`) `len` bytes through it. A GPU access
   * and a TLB flush are atomic with respect to each other on real hardware (the
   * flush waits for in-flight accesses); doing both here without a yield point
   * gives the same guarantee, so a PTE can never be used after the invalidation
   * that zapped it. Returns `"fault"` when the PTE is missing (or read-only for a
   * write), a `Failure` when memory refused the access, `undefined` when done.
   */
  const touchPage = (
    vpn: number,
    write: boolean,
    pageOff: number,
    len: number,
    out: Uint8Array | undefined,
    outOff: number,
    src: Uint8Array | undefined,
    srcOff: number
  ): "fault" | Failure | undefined => {
    const pte = ptes.get(vpn)
    if (pte === undefined || (write && pte.readOnly)) return "fault"
    const at = pte.devAddr + pageOff
    if (pte.proto === SYSTEM_PROTO) {
      const t = st.translateIova(at)
      if (t === undefined) return mine(`IOMMU fault: IOVA ${hex(at)} has no live mapping`)
      if (out !== undefined) {
        const got = st.readFrame(t.pfn, t.offset, len)
        if (got === undefined) return mine(`frame ${t.pfn} behind IOVA ${hex(pte.devAddr)} was freed`)
        out.set(got, outOff)
      }
      if (src !== undefined && !st.writeFrame(t.pfn, t.offset, src.subarray(srcOff, srcOff + len))) {
        return mine(`frame ${t.pfn} behind IOVA ${hex(pte.devAddr)} is not writable (freed or zero page)`)
      }
      return undefined
    }
    const vram = vramFor(pte.proto, at)
    if (vram === undefined) return mine(`no device memory of protocol "${pte.proto}" at ${hex(at)}`)
    const err = vram.checkAccess(out !== undefined ? "device read" : "device write", at, len)
    if (err !== undefined) return { detail: err, recorded: true }
    const pfn = Math.floor(at / PAGE_SIZE)
    if (out !== undefined) vram.readPage(pfn, pageOff, out, outOff, len)
    if (src !== undefined) vram.writePage(pfn, pageOff, src, srcOff, len)
    vram.touch(pfn)
    return undefined
  }

  /** Resolves a GPU page fault at `addr` through the handler (or fails). */
  const fault = (addr: number, write: boolean, atomic: boolean) =>
    Effect.suspend(() => {
      if (handler === undefined) return Effect.fail(fail(addr, "GPU page fault with no fault handler registered"))
      stats.faults++
      return handler({ addr, write, atomic })
    })

  /** One page of an access: retried after each fault, at most `MAX_FAULTS_PER_PAGE` faults. */
  const page = (addr: number, write: boolean, atomic: boolean, len: number, out: Uint8Array | undefined, outOff: number, src: Uint8Array | undefined, srcOff: number) =>
    Effect.gen(function*() {
      const vpn = Math.floor(addr / PAGE_SIZE)
      const off = addr % PAGE_SIZE
      for (let attempt = 0;; attempt++) {
        const r = touchPage(vpn, write || atomic, off, len, out, outOff, src, srcOff)
        if (r === undefined) return
        if (r !== "fault") return yield* stale(addr, r)
        if (attempt === MAX_FAULTS_PER_PAGE) return yield* fail(addr, `page still not mapped after ${MAX_FAULTS_PER_PAGE} faults`)
        yield* fault(addr, write, atomic)
      }
    })

  // a yield point only under the explorer (seeded schedules keep their old draws)
  const point = st.interleaving.controlled ? st.schedule.at("gpu.access") : Effect.void
  const access = (addr: number, length: number, mode: AccessMode, bytes?: Uint8Array) =>
    Effect.gen(function*() {
      yield* point
      if (!isAddress(addr) || !Number.isSafeInteger(length) || length <= 0 || !isAddress(addr + length - 1)) {
        return yield* fail(addr, `bad GPU access [${addr}, +${length})`)
      }
      stats.accesses++
      if (mode === "atomic") {
        if (length !== 4 || addr % 4 !== 0) return yield* fail(addr, "atomic access must be 4 bytes, 4-byte aligned")
        const old = new Uint8Array(4)
        // read-modify-write in one synchronous step per attempt: fault first if needed
        const vpn = Math.floor(addr / PAGE_SIZE)
        const off = addr % PAGE_SIZE
        for (let attempt = 0;; attempt++) {
          const r = touchPage(vpn, true, off, 4, old, 0, undefined, 0)
          if (r === undefined) {
            const next = new Uint8Array(4)
            new DataView(next.buffer).setUint32(0, (new DataView(old.buffer).getUint32(0, true) + 1) % 2 ** 32, true)
            const w = touchPage(vpn, true, off, 4, undefined, 0, next, 0)
            if (w === undefined) return old
            if (w !== "fault") return yield* stale(addr, w)
          } else if (r !== "fault") return yield* stale(addr, r)
          if (attempt === MAX_FAULTS_PER_PAGE) return yield* fail(addr, `page still not mapped after ${MAX_FAULTS_PER_PAGE} faults`)
          yield* fault(addr, true, true)
        }
      }
      if (mode === "write" && (bytes === undefined || bytes.length < length)) {
        return yield* fail(addr, `write of ${length} bytes needs that many bytes`)
      }
      const out = mode === "read" ? new Uint8Array(length) : undefined
      const src = mode === "write" ? bytes : undefined
      let done = 0
      while (done < length) {
        const at = addr + done
        const len = Math.min(PAGE_SIZE - (at % PAGE_SIZE), length - done)
        yield* page(at, mode === "write", false, len, out, done, src, done)
        done += len
      }
      return out
    })

  const stale = (addr: number, f: Failure) =>
    Effect.andThen(
      Effect.sync(() => {
        if (!f.recorded) st.recordViolation({ invariant: "stale-device-access", detail: `GPU access at ${hex(addr)}: ${f.detail}` })
      }),
      Effect.fail(fail(addr, f.detail))
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

/** The simulated GPU over the machine's `SimState`. */
export const layer: Layer.Layer<Gpu, never, SimState> = Layer.effect(
  Gpu,
  Effect.gen(function*() {
    const st = yield* SimState
    return makeGpu(st)
  })
)
