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
 * VRAM directly through the pagemap whose protocol they carry.
 *
 * Each page is read/written in one synchronous step, so a concurrent
 * invalidation either precedes or follows it (the hardware's per-access
 * atomicity w.r.t. a TLB flush).
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option } from "effect"
import { hex, isAddress, PAGE_SIZE } from "../../domain/Address.ts"
import { SYSTEM_PROTO } from "../../domain/DeviceAddress.ts"
import type { DeviceAddress } from "../../domain/DeviceAddress.ts"
import { GpuFaultError } from "../../domain/Errors.ts"
import { type DevicePagemapApi, DevicePagemaps } from "../../services/DevicePagemap.ts"
import { type AccessMode, type FaultHandler, Gpu, type GpuStats } from "../../services/Gpu.ts"
import { type MachineState, SimState } from "./MachineState.ts"

/** Fault rounds per page before the access gives up (the handler itself retries internally). */
export const MAX_FAULTS_PER_PAGE = 4

/** One GPU PTE. */
interface GpuPte {
  readonly devAddr: number
  readonly proto: string
  readonly readOnly: boolean
}

const fail = (addr: number, reason: string, cause?: { readonly _tag: string; readonly message: string }) =>
  new GpuFaultError({
    reason,
    addr,
    retries: 0,
    ...(cause === undefined ? {} : { cause: cause.message, causeTag: cause._tag })
  })

/** Builds the GPU of machine `st`; `pagemaps` are the device memories it can reach directly. */
export const makeGpu = (st: MachineState, pagemaps: ReadonlyArray<DevicePagemapApi>): Gpu["Service"] => {
  const ptes = new Map<number, GpuPte>()
  const stats = { faults: 0, tlbFlushes: 0, accesses: 0 }
  let handler: FaultHandler | undefined
  const byProto = new Map(pagemaps.map((p) => [p.proto, p] as const))

  const zap = (start: number, end: number) => {
    const first = Math.floor(start / PAGE_SIZE)
    const last = Math.ceil(end / PAGE_SIZE)
    if (last - first <= ptes.size) {
      for (let v = first; v < last; v++) ptes.delete(v)
    } else {
      for (const v of ptes.keys()) if (v >= first && v < last) ptes.delete(v)
    }
  }

  const bind = (rangeStart: number, rangeEnd: number, addrs: ReadonlyArray<DeviceAddress>, o?: { readonly readOnly?: boolean }) =>
    Effect.sync(() => {
      const readOnly = o?.readOnly === true
      let vpn = Math.floor(rangeStart / PAGE_SIZE)
      const endVpn = Math.ceil(rangeEnd / PAGE_SIZE)
      for (const a of addrs) {
        const n = 2 ** a.order
        for (let k = 0; k < n && vpn < endVpn; k++, vpn++) {
          ptes.set(vpn, { devAddr: a.addr + k * PAGE_SIZE, proto: a.proto, readOnly })
        }
      }
    })

  const invalidate = (start: number, end: number) =>
    Effect.sync(() => {
      zap(start, end)
      stats.tlbFlushes++
    })

  /** Reads (into `out` at `outOff`) or writes (from `src`) `len` bytes of one page through its PTE; an error string on failure. */
  const touchPage = (
    pte: GpuPte,
    pageOff: number,
    len: number,
    out: Uint8Array | undefined,
    outOff: number,
    src: Uint8Array | undefined,
    srcOff: number
  ): Effect.Effect<string | undefined> => {
    if (pte.proto === SYSTEM_PROTO) {
      return Effect.sync(() => {
        const t = st.translateIova(pte.devAddr + pageOff)
        if (t === undefined) return `IOMMU fault: IOVA ${hex(pte.devAddr + pageOff)} has no live mapping`
        if (out !== undefined) {
          const bytes = st.readFrame(t.pfn, t.offset, len)
          if (bytes === undefined) return `frame ${t.pfn} behind IOVA ${hex(pte.devAddr)} was freed`
          out.set(bytes, outOff)
        }
        if (src !== undefined && !st.writeFrame(t.pfn, t.offset, src.subarray(srcOff, srcOff + len))) {
          return `frame ${t.pfn} behind IOVA ${hex(pte.devAddr)} is not writable (freed or zero page)`
        }
        return undefined
      })
    }
    const pm = byProto.get(pte.proto)
    if (pm === undefined) return Effect.succeed(`no device memory speaks protocol "${pte.proto}"`)
    const at = pte.devAddr + pageOff
    return Effect.gen(function*() {
      if (out !== undefined) {
        const r = yield* Effect.result(pm.readDevice(at, len))
        if (r._tag === "Failure") return `VRAM read at ${hex(at)}: ${r.failure.message}`
        out.set(r.success, outOff)
      }
      if (src !== undefined) {
        const w = yield* Effect.result(pm.writeDevice(at, src.subarray(srcOff, srcOff + len)))
        if (w._tag === "Failure") return `VRAM write at ${hex(at)}: ${w.failure.message}`
      }
      return undefined
    })
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
        const pte = yield* pteFor(addr, true, true)
        const old = new Uint8Array(4)
        const off = addr % PAGE_SIZE
        const err = yield* touchPage(pte, off, 4, old, 0, undefined, 0)
        if (err !== undefined) return yield* stale(addr, err)
        const v = new DataView(old.buffer).getUint32(0, true)
        const next = new Uint8Array(4)
        new DataView(next.buffer).setUint32(0, (v + 1) % 2 ** 32, true)
        // read-modify-write with no yield point in between (touchPage on system memory is synchronous;
        // VRAM reads/writes of the simulated pagemap are too)
        const werr = yield* touchPage(pte, off, 4, undefined, 0, next, 0)
        if (werr !== undefined) return yield* stale(addr, werr)
        return old
      }
      if (mode === "write" && (bytes === undefined || bytes.length < length)) {
        return yield* fail(addr, `write of ${length} bytes needs that many bytes`)
      }
      const out = mode === "read" ? new Uint8Array(length) : undefined
      let done = 0
      while (done < length) {
        const at = addr + done
        const off = at % PAGE_SIZE
        const len = Math.min(PAGE_SIZE - off, length - done)
        const pte = yield* pteFor(at, mode === "write", false)
        const err = yield* touchPage(pte, off, len, out, done, mode === "write" ? bytes : undefined, done)
        if (err !== undefined) return yield* stale(at, err)
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
    isBound: (start, end) =>
      Effect.sync(() => {
        for (let v = Math.floor(start / PAGE_SIZE); v < Math.ceil(end / PAGE_SIZE); v++) if (ptes.has(v)) return true
        return false
      }),
    stats: Effect.sync((): GpuStats => ({ ...stats, ptesLive: ptes.size }))
  })
}

/** The simulated GPU over the machine's `SimState` and its `DevicePagemaps` (if any). */
export const layer: Layer.Layer<Gpu, never, SimState> = Layer.effect(
  Gpu,
  Effect.gen(function*() {
    const st = yield* SimState
    const pagemaps = Option.match(yield* Effect.serviceOption(DevicePagemaps), { onNone: () => [], onSome: (p) => p.all })
    return makeGpu(st, pagemaps)
  })
)
