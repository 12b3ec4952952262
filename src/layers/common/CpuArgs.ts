/**
 * The prologues of the `Cpu` system calls and accesses, shared by both
 * machines so that a bad argument is the same typed error (naming the call and
 * the argument) whichever machine runs it, and is rejected before anything
 * changes: argument checks (`mmap`, window calls, `mprotect`, `mremap`, loads
 * and stores), liveness (a call after `exit`), and the VMA check of a load or
 * store (SIGSEGV / SIGBUS-like refusals). What happens after the prologue
 * (placement, the page tables or the helper process) is each machine's own.
 *
 * All synchronous and lock-free: a caller checks arguments before taking the
 * mmap lock and liveness / VMAs under it.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { ADDRESS_LIMIT, alignDown, alignUp, HUGE_PAGE_SIZE, isAddress, isPowerOfTwo, overlaps, PAGE_SIZE } from "../../domain/Address.ts"
import { BadAddress, InvalidArgument, PermissionDenied } from "../../domain/Errors.ts"
import type { Prot } from "../../domain/Prot.ts"
import { PROT_RW } from "../../domain/Prot.ts"
import type { Vma, VmaKind } from "../../domain/Vma.ts"
import type { MmapOptions, MremapOptions } from "../../services/Cpu.ts"

/**
 * An `InvalidArgument` with an optional address.
 *
 * @category constructors
 * @since 0.1.0
 */
export const invalid = (reason: string, addr?: number): InvalidArgument =>
  addr === undefined ? new InvalidArgument({ reason }) : new InvalidArgument({ reason, addr })

/**
 * The error of a mapping call after `exit` (the kernel's `mm_users` is 0: there is no address space).
 *
 * @category constructors
 * @since 0.2.0
 */
export const exited = (call: string): InvalidArgument => invalid(`${call}: the address space has exited`)

/**
 * The error of a load or store (`read` / `write`) after `exit`.
 *
 * @category constructors
 * @since 0.2.0
 */
export const accessExited = (call: string, addr: number): BadAddress =>
  new BadAddress({ reason: `${call}: the address space has exited`, addr })

/**
 * Is `p` a well-formed `Prot` (three booleans)?
 *
 * @category validation
 * @since 0.1.0
 */
export const isProt = (p: unknown): p is Prot =>
  typeof p === "object" && p !== null &&
  typeof (p as Prot).read === "boolean" && typeof (p as Prot).write === "boolean" &&
  typeof (p as Prot).exec === "boolean"

/**
 * Validates `addr`/`length` of a window call: page-aligned address, positive page-multiple length, end ≤ 2^53.
 *
 * @category validation
 * @since 0.1.0
 */
export const checkWindow = (call: string, addr: number, length: number): InvalidArgument | undefined => {
  if (!isAddress(addr)) return invalid(`${call}: addr is not an address in [0, 2^53)`)
  if (addr % PAGE_SIZE !== 0) return invalid(`${call}: addr is not page aligned`, addr)
  if (!Number.isSafeInteger(length) || length <= 0) return invalid(`${call}: length must be a positive integer`, addr)
  if (length % PAGE_SIZE !== 0) return invalid(`${call}: length is not a multiple of 4096`, addr)
  if (addr + length > ADDRESS_LIMIT) return invalid(`${call}: addr + length is past 2^53`, addr)
  return undefined
}

/**
 * Validates `mlock` / `munlock(addr, length)` and returns the page window they act on: like Linux
 * (`do_mlock`: `len = PAGE_ALIGN(len + offset_in_page(start)); start &= PAGE_MASK`) the address is
 * rounded down and the end up to a page; a zero length is an empty window (`[s, s)`, nothing to do).
 * Errors: not an address, a negative or non-integer length, or an end past 2^53 → `InvalidArgument`
 * (kernel-semantics §11.17).
 *
 * @category validation
 * @since 0.3.0
 */
export const checkLockWindow = (call: string, addr: number, length: number): readonly [number, number] | InvalidArgument => {
  if (!isAddress(addr)) return invalid(`${call}: addr is not an address in [0, 2^53)`)
  if (!Number.isSafeInteger(length) || length < 0) return invalid(`${call}: length must be a non-negative integer`, addr)
  const start = addr - (addr % PAGE_SIZE)
  const end = Math.ceil((addr + length) / PAGE_SIZE) * PAGE_SIZE
  if (end > ADDRESS_LIMIT) return invalid(`${call}: addr + length is past 2^53`, addr)
  return [start, end]
}

/**
 * Validates the arguments of `mprotect(addr, length, prot)`: the window, then `prot`.
 *
 * @category validation
 * @since 0.2.0
 */
export const checkMprotect = (addr: number, length: number, prot: Prot): InvalidArgument | undefined =>
  checkWindow("mprotect", addr, length) ??
    (isProt(prot) ? undefined : invalid("mprotect: prot must be { read, write, exec } booleans", addr))

/**
 * Validates the arguments of `mremap(addr, oldLength, newLength, o)` (what can be checked without the VMAs).
 *
 * @category validation
 * @since 0.1.0
 */
export const checkMremap = (addr: number, oldLength: number, newLength: number, o?: MremapOptions): InvalidArgument | undefined => {
  const e1 = checkWindow("mremap", addr, oldLength)
  if (e1 !== undefined) return e1
  if (!Number.isSafeInteger(newLength) || newLength <= 0 || newLength % PAGE_SIZE !== 0) {
    return invalid("mremap: newLength must be a positive multiple of 4096", addr)
  }
  const newAddr = o?.newAddr
  if (newAddr !== undefined) {
    const e2 = checkWindow("mremap", newAddr, newLength)
    if (e2 !== undefined) return invalid(e2.reason.replace("addr", "newAddr"), newAddr)
    if (overlaps(newAddr, newAddr + newLength, addr, addr + oldLength)) return invalid("mremap: newAddr window overlaps the old range", newAddr)
  }
  if (o?.dontUnmap === true && oldLength !== newLength) return invalid("mremap: dontUnmap needs newLength == oldLength", addr)
  return undefined
}

/**
 * The checked arguments of an `mmap`: the backing kind, protection, length,
 * the kind's minimum alignment (2 MiB for hugetlb) and the placement alignment
 * asked for (`align`, default 4096; at least `minAlign` is applied by placement).
 *
 * @category models
 * @since 0.2.0
 */
export interface MmapArgs {
  readonly kind: VmaKind
  readonly prot: Prot
  readonly length: number
  readonly minAlign: number
  readonly align: number
}

const KINDS: ReadonlyArray<VmaKind> = ["anonymous", "file", "hugetlb", "special"]

/**
 * Validates the options of `mmap(o)` (what can be checked without the VMAs):
 * kind (one of `VmaKind`, and one the machine supports: `supported`, named by
 * `machine` in the refusal), prot, a positive length that is a multiple of the
 * kind's alignment, an address (exact and fitting only with `fixed`, a hint
 * otherwise, §11.15), `align` a power of two ≥ 4096, `fileSeed` an integer,
 * `name` a string. The checked values, or the `InvalidArgument`.
 *
 * @category validation
 * @since 0.2.0
 */
export const checkMmap = (o: MmapOptions, supported: ReadonlyArray<VmaKind> = KINDS, machine = "this machine"): MmapArgs | InvalidArgument => {
  if (typeof o !== "object" || o === null) return invalid("mmap: options must be an object")
  const kind = o.kind ?? "anonymous"
  if (!KINDS.includes(kind)) return invalid("mmap: kind must be anonymous, file, hugetlb or special")
  if (!supported.includes(kind)) return invalid(`mmap: kind "${kind}" is not supported by ${machine} (${supported.join(" and ")} only)`)
  const prot = o.prot ?? PROT_RW
  if (!isProt(prot)) return invalid("mmap: prot must be { read, write, exec } booleans")
  const minAlign = kind === "hugetlb" ? HUGE_PAGE_SIZE : PAGE_SIZE
  const length = o.length
  if (!Number.isSafeInteger(length) || length <= 0) return invalid("mmap: length must be a positive integer")
  if (length % minAlign !== 0) {
    return invalid(kind === "hugetlb" ? "mmap: length of a hugetlb mapping must be a multiple of 2 MiB" : "mmap: length is not a multiple of 4096")
  }
  if (o.addr !== undefined) {
    if (!isAddress(o.addr)) return invalid("mmap: addr is not an address in [0, 2^53)")
    // Only MAP_FIXED insists on an aligned, fitting addr; a hint is rounded down and may be ignored (§11.15).
    if (o.fixed === true && o.addr % minAlign !== 0) {
      return invalid(kind === "hugetlb" ? "mmap: addr of a hugetlb mapping must be 2 MiB aligned" : "mmap: addr is not page aligned", o.addr)
    }
    if (o.fixed === true && o.addr + length > ADDRESS_LIMIT) return invalid("mmap: addr + length is past 2^53", o.addr)
  }
  if (o.fixed === true && o.addr === undefined) return invalid("mmap: fixed needs addr")
  const align = o.align ?? PAGE_SIZE
  if (!isPowerOfTwo(align) || align < PAGE_SIZE) return invalid("mmap: align must be a power of two >= 4096")
  if (o.fileSeed !== undefined && !Number.isSafeInteger(o.fileSeed)) return invalid("mmap: fileSeed must be an integer")
  if (o.name !== undefined && typeof o.name !== "string") return invalid("mmap: name must be a string")
  return { kind, prot, length, minAlign, align }
}

/**
 * Validates `addr`/`length` of a load or store: an address, a non-negative
 * integer length, end ≤ 2^53 (`BadAddress`, as a faulting access is).
 *
 * @category validation
 * @since 0.2.0
 */
export const checkAccessArgs = (call: string, addr: number, length: number): BadAddress | InvalidArgument | undefined => {
  if (!isAddress(addr)) return new BadAddress({ reason: `${call}: addr is not an address in [0, 2^53)` })
  if (!Number.isSafeInteger(length) || length < 0) return new BadAddress({ reason: `${call}: length must be a non-negative integer`, addr })
  if (addr + length > ADDRESS_LIMIT) return new BadAddress({ reason: `${call}: addr + length is past 2^53`, addr })
  if (length > MAX_RW_COUNT) {
    return new InvalidArgument({ reason: `${call}: length ${length} exceeds MAX_RW_COUNT (${MAX_RW_COUNT}, 2 GiB - 4 KiB): access it in pieces`, addr })
  }
  return undefined
}

/**
 * `MAX_RW_COUNT` (`INT_MAX & PAGE_MASK`, include/linux/fs.h): the most bytes
 * one read or write transfers in Linux, and the bound on one `Cpu.read` /
 * `Cpu.write` / GPU access here, so a huge request is a typed `InvalidArgument`
 * decided before any byte moves (never an allocation failure).
 *
 * @category constants
 * @since 0.2.0
 */
export const MAX_RW_COUNT = 0x7ffff000

/**
 * Validates the arguments of a store `write(addr, bytes)`: `bytes` a `Uint8Array`, then as {@link checkAccessArgs}.
 *
 * @category validation
 * @since 0.2.0
 */
export const checkWriteArgs = (addr: number, bytes: Uint8Array): BadAddress | InvalidArgument | undefined =>
  bytes instanceof Uint8Array
    ? checkAccessArgs("write", addr, bytes.length)
    : new BadAddress({ reason: "write: bytes must be a Uint8Array", addr })

/**
 * What {@link checkCpuAccess} reads of a VMA (either machine's VMA record).
 *
 * @category models
 * @since 0.2.0
 */
export type AccessVma = Pick<Vma, "start" | "end" | "prot">

/**
 * A check of `[start, end)` against the VMAs intersecting it (in address
 * order): a read (`write` false) or a write refusal, or `undefined`.
 *
 * @category models
 * @since 0.2.0
 */
export type VmaCheck<V> = (vmas: ReadonlyArray<V>, start: number, end: number, write: boolean) => BadAddress | PermissionDenied | undefined

/**
 * Builds a {@link VmaCheck}: walks the VMAs in address order and returns the
 * first refusal — `hole(at)` for the first byte no VMA maps, else what
 * `refuseRead` / `refuseWrite` say of a VMA (`at`: where the window enters
 * it). The shape of every VMA check the kernel makes on the way (a CPU fault,
 * an HMM walk), done per VMA rather than per page.
 *
 * @category constructors
 * @since 0.2.0
 */
export const vmaCheck = <V extends { readonly start: number; readonly end: number }>(
  hole: (at: number) => BadAddress,
  refuseRead: (v: V, at: number) => BadAddress | undefined,
  refuseWrite: (v: V, at: number) => BadAddress | PermissionDenied | undefined
): VmaCheck<V> =>
(vmas, start, end, write) => {
  const refuse = write ? refuseWrite : refuseRead
  let at = start
  for (const v of vmas) {
    if (v.start > at) return hole(at)
    const e = refuse(v, Math.max(at, v.start))
    if (e !== undefined) return e
    at = v.end
  }
  return at >= end ? undefined : hole(at)
}

/**
 * Checks a CPU access of `[start, end)` (page aligned) against the VMAs that
 * intersect it (in address order): a hole or an inaccessible (PROT_NONE) VMA
 * is `BadAddress` (SIGSEGV), a store to a VMA without write permission is
 * `PermissionDenied`.
 *
 * @category validation
 * @since 0.2.0
 */
export const checkCpuAccess: VmaCheck<AccessVma> = (() => {
  const refuseLoad = (v: AccessVma, at: number): BadAddress | undefined =>
    !v.prot.read && !v.prot.write && !v.prot.exec ? new BadAddress({ reason: "VMA is PROT_NONE", addr: at }) : undefined
  return vmaCheck<AccessVma>(
    (at) => new BadAddress({ reason: "no VMA maps the address", addr: at }),
    refuseLoad,
    (v, at) => refuseLoad(v, at) ?? (v.prot.write ? undefined : new PermissionDenied({ reason: "write to a VMA without PROT_WRITE", addr: at }))
  )
})()

/**
 * The error a load or store returns for a refused {@link checkCpuAccess}: a
 * `BadAddress` named after the call (at the refused address, else `addr`); a
 * `PermissionDenied` as it is.
 *
 * @category constructors
 * @since 0.2.0
 */
export const accessRefused = (call: string, bad: BadAddress | PermissionDenied, addr: number): BadAddress | PermissionDenied =>
  bad._tag === "BadAddress" ? new BadAddress({ reason: `${call}: ${bad.reason}`, addr: bad.addr ?? addr }) : bad

/**
 * The VMAs of a machine as a load or store's prologue reads them.
 *
 * @category models
 * @since 0.2.0
 */
export interface AccessVmas {
  /** The VMAs intersecting `[start, end)`, in address order. */
  readonly intersecting: (start: number, end: number) => ReadonlyArray<AccessVma>
}

/**
 * The errors a load (`read`: `BadAddress`) or a store (`write`: also `PermissionDenied`) can end in.
 *
 * @category models
 * @since 0.2.0
 */
export type AccessError<C extends "read" | "write"> = C extends "write" ? BadAddress | PermissionDenied : BadAddress

/**
 * The liveness and VMA checks of a load or store of `[addr, addr + length)`: the refusal, or `undefined`;
 * see {@link checkedAccess}. Pure (the CPU read fast path of issue #16 asks it first).
 *
 * @category validation
 * @since 0.5.0
 */
export const accessPrologue = (alive: boolean, vmas: AccessVmas, call: "read" | "write", addr: number, length: number): BadAddress | PermissionDenied | undefined => {
  if (!alive) return accessExited(call, addr)
  const s = alignDown(addr, PAGE_SIZE)
  const e = alignUp(addr + length, PAGE_SIZE)
  const refused = checkCpuAccess(vmas.intersecting(s, e), s, e, call === "write")
  return refused === undefined ? undefined : accessRefused(call, refused, addr)
}

/**
 * Runs a mapping call's `body` only while the address space lives; after
 * `exit` the call fails with {@link exited} instead (the kernel's `mm_users`
 * is 0). Meant to run under the mmap lock, so that `exit` cannot slip in
 * between the check and the change.
 *
 * @category combinators
 * @since 0.2.0
 */
export const ifAlive = <A, E, R>(st: { readonly alive: boolean }, call: string, body: Effect.Effect<A, E, R>): Effect.Effect<A, E | InvalidArgument, R> =>
  Effect.suspend((): Effect.Effect<A, E | InvalidArgument, R> => (st.alive ? body : Effect.fail(exited(call))))

/**
 * A load or store of `[addr, addr + length)` past its argument checks (run
 * it under the mmap read lock): the address space must be alive
 * ({@link accessExited} otherwise) and the VMAs over the touched pages must
 * allow it ({@link checkCpuAccess}, reported through {@link accessRefused});
 * then `body(s, e)` runs with the page-aligned span touched.
 *
 * @category combinators
 * @since 0.2.0
 */
export const checkedAccess = <C extends "read" | "write", A, E, R>(
  st: { readonly alive: boolean },
  vmas: AccessVmas,
  call: C,
  addr: number,
  length: number,
  body: (s: number, e: number) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | AccessError<C>, R> =>
  Effect.suspend((): Effect.Effect<A, E | AccessError<C>, R> => {
    // a load's check never yields PermissionDenied (checkCpuAccess with write false), hence AccessError<C>
    const refused = accessPrologue(st.alive, vmas, call, addr, length) as AccessError<C> | undefined
    return refused === undefined ? body(alignDown(addr, PAGE_SIZE), alignUp(addr + length, PAGE_SIZE)) : Effect.fail(refused)
  })
