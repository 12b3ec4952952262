/**
 * The GPU engine both machines' `Gpu` services are built from: the GPU page
 * table (`GpuPageTable`), the access engine for read / write / 32-bit atomic
 * increments, the bounded fault loop that calls the driver's registered fault
 * handler, `stale-device-access` violation recording, and the counters. What
 * the two machines differ in — how a present PTE reaches its bytes — is a small
 * {@link GpuMemoryPort}: `touchSystem` for a system-memory PTE (the simulated
 * IOMMU model; the native DMA/pagemap oracle plus `/proc/<pid>/mem`) and
 * `touchDevice` for a device-memory PTE (the machine's VRAM).
 *
 * Mirrors the hardware side of the kernel's GPU fault path: a missing PTE (or a
 * write/atomic through a read-only one, or an atomic through a PTE bound without
 * the atomic bit, kernel-semantics §11.17) is a GPU page fault delivered to the
 * driver (`xe_svm_handle_pagefault` → kernel-semantics §10.1), after which the
 * access is retried, at most {@link MAX_FAULTS_PER_PAGE} faults per page
 * (design §8.5: bounded work, every give-up a typed `GpuFaultError`).
 *
 * Atomicity (design §8.2, no stale device access): a page's PTE lookup and its
 * memory touch happen in ONE synchronous step, so a concurrent invalidation
 * (`invalidate`: zap + TLB flush) either precedes it (→ the access faults) or
 * follows it — a PTE is never used after the invalidation that zapped it, as
 * the hardware's TLB flush waits for in-flight accesses. An atomic increment's
 * read and write are one such step.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import { hex, isAddress, PAGE_SIZE } from "../../domain/Address.ts"
import { type DeviceAddress, SYSTEM_PROTO } from "../../domain/DeviceAddress.ts"
import { GpuFaultError, InvalidArgument } from "../../domain/Errors.ts"
import { NOT_NOW, withNow } from "../../domain/Now.ts"
import { type AccessMode, type FaultHandler, Gpu, gpuAccess, type GpuStats } from "../../services/Gpu.ts"
import type { Violation } from "../../services/Machine.ts"
import { GpuPageTable, type GpuPte } from "./GpuPageTable.ts"
import { MAX_RW_COUNT } from "./CpuArgs.ts"

/**
 * Fault rounds per page before an access gives up (the handler itself retries internally).
 *
 * @category constants
 * @since 0.1.0
 */
export const MAX_FAULTS_PER_PAGE = 4

/**
 * A page touch that memory refused: `detail` says why; `recorded` is true when
 * the memory already recorded the violation itself (e.g. the simulated VRAM's
 * own access check), so the engine does not record it twice.
 *
 * @category models
 * @since 0.2.0
 */
export interface TouchFailure {
  readonly detail: string
  readonly recorded: boolean
}

/**
 * A refusal the engine records as a `stale-device-access` violation.
 *
 * @category constructors
 * @since 0.2.0
 */
export const refused = (detail: string): TouchFailure => ({ detail, recorded: false })

/**
 * A refusal the memory has already recorded as a violation (the engine only fails the access).
 *
 * @category constructors
 * @since 0.2.0
 */
export const alreadyRecorded = (detail: string): TouchFailure => ({ detail, recorded: true })

/**
 * One page touch through a present PTE, synchronous: reads `len` bytes at
 * `pageOff` of the page behind `pte` into `buf` at `bufOff` (`write` false), or
 * writes them from there (`write` true). `pageVa` is the GPU virtual address of
 * the page (the same as the CPU's under SVM). `undefined` when done, a
 * {@link TouchFailure} when memory refused. Must not yield: the engine relies on
 * the lookup and the touch being one step.
 *
 * @category models
 * @since 0.2.0
 */
export type PageTouch = (
  pte: GpuPte,
  pageVa: number,
  pageOff: number,
  len: number,
  write: boolean,
  buf: Uint8Array,
  bufOff: number
) => TouchFailure | undefined

/**
 * What a machine gives the engine: how a present PTE reaches memory, and where
 * violations go. Everything else (page table, fault loop, counters) is the engine's.
 *
 * @category models
 * @since 0.2.0
 */
export interface GpuMemoryPort {
  /** A PTE of protocol `SYSTEM_PROTO`: system memory, reached through the machine's DMA model. */
  readonly touchSystem: PageTouch
  /** Any other protocol: the device memory that speaks it. */
  readonly touchDevice: PageTouch
  /** Records an invariant violation on the machine (`stale-device-access` here). */
  readonly recordViolation: (v: Violation) => void
}

/**
 * Engine options: the explorer's yield points (absent: none, and no extra step).
 *
 * @category models
 * @since 0.2.0
 */
export interface GpuEngineOptions {
  /** Run at the start of every `access` (the simulated machine's `gpu.access` point under the explorer). */
  readonly accessPoint?: Effect.Effect<void> | undefined
  /** Run before every `bind`'s page-table update (the `gpu.bind` point under the explorer). */
  readonly bindPoint?: Effect.Effect<void> | undefined
}

/** The page table said "fault" (missing PTE, or read-only for a write). */
const FAULT = 0 as const
type Touched = typeof FAULT | TouchFailure | undefined

/** Access kinds of one page touch. */
const READ = 0
const WRITE = 1
const ATOMIC = 2
type Kind = typeof READ | typeof WRITE | typeof ATOMIC

const fail = GpuFaultError.of

/**
 * Builds a `Gpu` service over `memory`. The page table, fault handler and
 * counters are private to the returned service. No locks: each page touch is
 * one synchronous step (see the module doc); the fault handler is the driver's
 * and takes its own locks. Errors: `GpuFaultError` for a malformed access, no
 * handler, a page still unmapped after {@link MAX_FAULTS_PER_PAGE} faults, a
 * handler's own give-up, or memory refusing the touch (then also a
 * `stale-device-access` violation).
 *
 * @category constructors
 * @since 0.2.0
 */
export const makeGpuEngine = (memory: GpuMemoryPort, options: GpuEngineOptions = {}): Gpu["Service"] => {
  const ptes = new GpuPageTable()
  const stats = { faults: 0, tlbFlushes: 0, accesses: 0 }
  let handler: FaultHandler | undefined
  const { accessPoint, bindPoint } = options
  const { touchSystem, touchDevice, recordViolation } = memory

  const bind = (
    rangeStart: number,
    rangeEnd: number,
    addrs: ReadonlyArray<DeviceAddress>,
    o?: { readonly readOnly?: boolean; readonly atomicWindow?: readonly [number, number] }
  ) => {
    const write = Effect.sync(() => ptes.bind(rangeStart, rangeEnd, addrs, o?.readOnly === true, o?.atomicWindow, SYSTEM_PROTO))
    return bindPoint === undefined ? write : Effect.andThen(bindPoint, write)
  }

  // issue #16: the bind in the calling step where it passes no point
  const bindNow: Gpu["Service"]["bindNow"] = (rangeStart, rangeEnd, addrs, o) => {
    if (bindPoint !== undefined) return NOT_NOW
    ptes.bind(rangeStart, rangeEnd, addrs, o?.readOnly === true, o?.atomicWindow, SYSTEM_PROTO)
  }

  const invalidate = (start: number, end: number) =>
    Effect.sync(() => {
      ptes.zap(start, end)
      stats.tlbFlushes++
    })

  /**
   * Looks the PTE of `vpn` up and touches memory through it, in one synchronous step. A missing PTE, a
   * write through a read-only one, or an atomic through one without the atomic bit (§11.17) faults.
   */
  const touch = (
    vpn: number,
    needWrite: boolean,
    pageOff: number,
    len: number,
    write: boolean,
    buf: Uint8Array,
    bufOff: number,
    needAtomic = false
  ): Touched => {
    const pte = ptes.get(vpn)
    if (pte === undefined || (needWrite && pte.readOnly) || (needAtomic && !pte.atomic)) return FAULT
    return (pte.proto === SYSTEM_PROTO ? touchSystem : touchDevice)(pte, vpn * PAGE_SIZE, pageOff, len, write, buf, bufOff)
  }

  /** One page's touch of kind `kind`; an atomic reads the old u32 into `buf` and writes old + 1 in the same step. */
  const touchKind = (vpn: number, pageOff: number, len: number, kind: Kind, buf: Uint8Array, bufOff: number): Touched => {
    if (kind !== ATOMIC) return touch(vpn, kind === WRITE, pageOff, len, kind === WRITE, buf, bufOff)
    const r = touch(vpn, true, pageOff, 4, false, buf, 0, true)
    if (r !== undefined) return r
    const next = new Uint8Array(4)
    new DataView(next.buffer).setUint32(0, (new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0, true) + 1) % 2 ** 32, true)
    return touch(vpn, true, pageOff, 4, true, next, 0)
  }

  /** Records (unless memory did) a `stale-device-access` violation and returns the access's error. */
  const stale = (addr: number, f: TouchFailure): GpuFaultError => {
    if (!f.recorded) recordViolation({ invariant: "stale-device-access", detail: `GPU access at ${hex(addr)}: ${f.detail}` })
    return fail(addr, f.detail)
  }

  /**
   * The fault loop of one page whose first touch gave `first`: hand the fault to
   * the driver's handler and touch again, at most `MAX_FAULTS_PER_PAGE` faults
   * (design §8.5); a refusal by memory ends the access (design §8.2).
   */
  const faultLoop = Effect.fnUntraced(function*(addr: number, kind: Kind, len: number, buf: Uint8Array, bufOff: number, first: Touched) {
    const vpn = Math.floor(addr / PAGE_SIZE)
    const off = addr % PAGE_SIZE
    let r = first
    for (let attempt = 0;; attempt++) {
      if (r === undefined) return
      if (r !== FAULT) return yield* stale(addr, r)
      if (attempt === MAX_FAULTS_PER_PAGE) return yield* fail(addr, `page still not mapped after ${MAX_FAULTS_PER_PAGE} faults`)
      if (handler === undefined) return yield* fail(addr, "GPU page fault with no fault handler registered")
      stats.faults++
      yield* handler({ addr, write: kind !== READ, atomic: kind === ATOMIC })
      r = touchKind(vpn, off, len, kind, buf, bufOff)
    }
  })

  const access = Effect.fnUntraced(function*(addr: number, length: number, mode: AccessMode, bytes?: Uint8Array) {
    if (accessPoint !== undefined) yield* accessPoint
    if (!isAddress(addr) || !Number.isSafeInteger(length) || length <= 0 || !isAddress(addr + length - 1)) {
      return yield* fail(addr, `bad GPU access [${addr}, +${length})`)
    }
    if (length > MAX_RW_COUNT) {
      const tooLong = new InvalidArgument({ reason: `GPU access of ${length} bytes exceeds MAX_RW_COUNT (${MAX_RW_COUNT}): access it in pieces`, addr })
      return yield* fail(addr, "GPU access too long", tooLong)
    }
    stats.accesses++
    if (mode === "atomic") {
      if (length !== 4 || addr % 4 !== 0) return yield* fail(addr, "atomic access must be 4 bytes, 4-byte aligned")
      const old = new Uint8Array(4)
      const r = touchKind(Math.floor(addr / PAGE_SIZE), addr % PAGE_SIZE, 4, ATOMIC, old, 0)
      if (r !== undefined) yield* faultLoop(addr, ATOMIC, 4, old, 0, r)
      return old
    }
    if (mode === "write" && (bytes === undefined || bytes.length < length)) {
      return yield* fail(addr, `write of ${length} bytes needs that many bytes`)
    }
    const kind = mode === "write" ? WRITE : READ
    const buf = kind === WRITE ? bytes! : new Uint8Array(length)
    let done = 0
    while (done < length) {
      const at = addr + done
      const off = at % PAGE_SIZE
      const len = Math.min(PAGE_SIZE - off, length - done)
      // the common case (PTE present, memory fine) stays synchronous: the fault loop only on a fault or refusal
      const r = touchKind(Math.floor(at / PAGE_SIZE), off, len, kind, buf, done)
      if (r !== undefined) yield* faultLoop(at, kind, len, buf, done, r)
      done += len
    }
    return kind === READ ? buf : undefined
  })

  return withNow(Gpu.of({
    access: gpuAccess(access),
    bind,
    invalidate,
    setFaultHandler: (h) =>
      Effect.sync(() => {
        handler = h
      }),
    isBound: (start, end) => Effect.sync(() => ptes.isBound(start, end)),
    stats: Effect.sync((): GpuStats => ({ ...stats, ptesLive: ptes.size })),
    // kernel-semantics §11.17: another VM of the same device (own page table and handler, same memories)
    createVm: Effect.sync(() => makeGpuEngine(memory, options))
  }), { bindNow })
}
