/**
 * `Cpu`: what the mirrored process itself does to its address space — the
 * system calls and memory accesses of the CPU side. Simulated: applied directly
 * to the machine state; native: commands to the helper process.
 *
 * Every call that changes mappings takes the mmap lock for writing
 * (`madvise(MADV_DONTNEED)`: for reading, §11.9) and raises
 * the MMU notifier events of kernel-semantics §7 on every overlapping notifier
 * *before* the pages change, waiting for the callbacks.
 *
 * @since 0.1.0
 */
import type { MachineServices } from "./Machine.ts"
import { Context, type Effect } from "effect"
import type { BadAddress, InvalidArgument, OutOfMemory, PermissionDenied, VmaNotFound } from "../domain/Errors.ts"
import type { Prot } from "../domain/Prot.ts"
import type { VmaKind } from "../domain/Vma.ts"
import type { DeviceBo } from "./DevicePagemap.ts"

/**
 * Options of `Cpu.mmap` (`mmap(2)`).
 *
 * @category models
 */
export interface MmapOptions {
  /** Bytes to map; a positive multiple of 4096. */
  readonly length: number
  /**
   * Requested address. With `fixed`: exact (page aligned, else `InvalidArgument`). Otherwise a hint,
   * rounded down to a page (2 MiB for hugetlb) and ignored, not an error, when the window there is not
   * free or does not fit (kernel-semantics §11.15).
   */
  readonly addr?: number
  /** `MAP_FIXED`: map exactly at `addr`, replacing whatever was there (an unmap event first). */
  readonly fixed?: boolean
  /** Protection; default read+write. */
  readonly prot?: Prot
  /** Backing kind; default anonymous. */
  readonly kind?: VmaKind
  /** `MAP_SHARED`; default private. */
  readonly shared?: boolean
  /** Alignment of the chosen address (a power of two ≥ 4096); ignored with `fixed`. */
  readonly align?: number
  /** For `kind: "file"`: the simulated file's seed (its bytes are a function of seed and offset). */
  readonly fileSeed?: number
  /** A name for the mapping (shown in `/proc/<pid>/maps`-like listings). */
  readonly name?: string
  /**
   * `MAP_LOCKED`: the new VMA is VM_LOCKED and populated at once, as by `mlock` (kernel-semantics
   * §11.17; population errors are ignored, as `mm_populate` does).
   */
  readonly locked?: boolean
  /**
   * A CPU mapping of a buffer object's device memory (Xe `xe_bo_map_fixed` → `mmap` of the BO's
   * fake offset on the DRM fd → `ttm_bo_mmap_obj`; IGT xe_exec_system_allocator `new-bo-map`,
   * `evict-malloc-mix-bo`): the VMA is `special` (VM_PFNMAP | VM_IO) and shared whatever `kind` /
   * `shared` say, `length` at most the BO's size; CPU loads and stores go straight to the BO's
   * device memory (the BAR), `hmm_range_fault` reports it as an error (never mirrored, never
   * migrated), `mlock` / `MAP_LOCKED` leave it unlocked (VM_SPECIAL). The BO's memory stays
   * allocated while a mapping of it exists, even after `freeBo` (the mapping holds a reference, as
   * TTM's VMA holds the GEM object). Errors: a BO this machine's device memory does not hold (or a
   * machine without simulated BOs, the native one), or `length` past the BO → `InvalidArgument`.
   */
  readonly bo?: DeviceBo
}

/**
 * Options of `Cpu.mremap` (`mremap(2)`).
 *
 * @category models
 */
export interface MremapOptions {
  /** `MREMAP_FIXED`: move to exactly this address. */
  readonly newAddr?: number
  /**
   * `MREMAP_DONTUNMAP`: move the pages, leave the old range mapped (and empty; a shared or file
   * mapping refaults it from its object). Allowed on any mapping but `special` ones (Linux 5.13+,
   * kernel-semantics §11.15); needs `newLength == oldLength`.
   */
  readonly dontUnmap?: boolean
}

/**
 * The process's own view of its memory.
 *
 * @category services
 */
export class Cpu extends Context.Service<Cpu, {
  /** `mmap(2)`: returns the start of the new mapping. Errors: bad length/addr/align → `InvalidArgument`; no room → `OutOfMemory`. */
  readonly mmap: (o: MmapOptions) => Effect.Effect<number, InvalidArgument | OutOfMemory>
  /** `munmap(2)`: unmaps `[addr, addr + length)` (holes are fine). Raises UNMAP first. */
  readonly munmap: (addr: number, length: number) => Effect.Effect<void, InvalidArgument>
  /**
   * `mprotect(2)`: the whole window must be mapped (`VmaNotFound` otherwise). VMAs whose protection
   * does not change are skipped (no event at all if none changes); each changed VMA raises
   * PROTECTION_VMA over its populated part (per PUD, from the first populated PMD) before its entries
   * change (kernel-semantics §11.11).
   */
  readonly mprotect: (addr: number, length: number, prot: Prot) => Effect.Effect<void, InvalidArgument | VmaNotFound>
  /**
   * `madvise(MADV_DONTNEED)`: drops the pages (they read as zero after). Raises CLEAR first. Holds the
   * mmap lock for reading (kernel-semantics §11.9): it may race faults and `populate_mm`. A VM_LOCKED
   * (mlocked) VMA in the window is `InvalidArgument` (Linux EINVAL, `madvise_dontneed_free_valid_vma`);
   * the VMAs before it were dropped already, as Linux walks them in order (kernel-semantics §11.17).
   */
  readonly madviseDontNeed: (addr: number, length: number) => Effect.Effect<void, InvalidArgument>
  /**
   * `mremap(2)` with `MREMAP_MAYMOVE`: move, grow or shrink; returns the new address. Raises UNMAP on the old range.
   * With `newAddr` (`MREMAP_FIXED`, page aligned, not overlapping the old range) whatever is mapped there is
   * unmapped first (UNMAP), as Linux does (kernel-semantics §11.17).
   */
  readonly mremap: (addr: number, oldLength: number, newLength: number, o?: MremapOptions) => Effect.Effect<number, InvalidArgument>
  /**
   * `mlock(2)`: `[addr, addr + length)` (widened to pages) becomes VM_LOCKED — its VMAs are split at
   * the edges and no longer merge with unlocked neighbours — and is populated (`__mm_populate`: every
   * page faulted in, for writing where the VMA is private and writable, which breaks COW with a CLEAR;
   * device-private pages come back to RAM first). Takes the mmap lock for writing to set the flags, then
   * for reading to populate. Locked pages still migrate to device memory (`migrate_vma` does not refuse
   * VM_LOCKED). Errors: a hole → `VmaNotFound` (Linux ENOMEM; nothing changes); a PROT_NONE part →
   * `VmaNotFound` too, as Linux 6.x: the whole window stays VM_LOCKED, what precedes the part is
   * populated, the part and what follows are not (GUP without FOLL_FORCE fails there); a device page
   * that cannot come back → `BadAddress`; bad arguments or after `exit` → `InvalidArgument`
   * (kernel-semantics §11.17).
   */
  readonly mlock: (addr: number, length: number) => Effect.Effect<void, InvalidArgument | VmaNotFound | BadAddress>
  /** `munlock(2)`: clears VM_LOCKED over the window (pages stay); errors as `mlock` (never `BadAddress` in practice: it populates nothing). No notifier event. */
  readonly munlock: (addr: number, length: number) => Effect.Effect<void, InvalidArgument | VmaNotFound | BadAddress>
  /**
   * A CPU load: faults pages in (device-private pages migrate back first,
   * `migrate_to_ram`). `InvalidArgument` for a length over `MAX_RW_COUNT`
   * (2 GiB − 4 KiB, Linux's bound on one read/write: read larger spans in pieces).
   */
  readonly read: (addr: number, length: number) => Effect.Effect<Uint8Array, BadAddress | InvalidArgument>
  /** A CPU store: faults pages in for writing (breaking COW). `InvalidArgument` over `MAX_RW_COUNT`, as `read`. */
  readonly write: (addr: number, bytes: Uint8Array) => Effect.Effect<void, BadAddress | PermissionDenied | InvalidArgument>
  /**
   * `exit(2)` → `exit_mmap`: every notifier gets RELEASE over the whole space, then UNMAP over the whole
   * space, and the address space goes away (kernel-semantics §11.1); `Mm.acquire` fails after.
   */
  readonly exit: Effect.Effect<void>
  /**
   * `fork(2)` (kernel-semantics §11.17): a child process on the same machine with a copy-on-write
   * copy of this address space, returned as the child's own machine services (its `Cpu`, `Mm`,
   * notifiers, `Hmm`, `Dma`, `Machine`, a fresh GPU VM, the machine's shared device memory).
   * Private mappings: one PROTECTION_PAGE invalidation per VMA to this process's notifiers, inside
   * which every present page becomes read-only here and is copied read-only to the child; a later
   * write by either side breaks the COW with a CLEAR. Device-private pages become read-only (a write
   * brings them back to RAM). Shared mappings stay shared (the child faults them in from the same
   * object). `VM_LOCKED` is not inherited. Holds the mmap lock for writing. Errors: after `exit`, or on
   * a machine that cannot fork (the native one) → `InvalidArgument`.
   */
  readonly fork: Effect.Effect<Context.Context<MachineServices>, InvalidArgument>
}>()("gpusvm/Cpu") {}
