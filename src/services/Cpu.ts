/**
 * `Cpu`: what the mirrored process itself does to its address space — the
 * system calls and memory accesses of the CPU side. Simulated: applied directly
 * to the machine state; native: commands to the helper process.
 *
 * Every call that changes mappings takes the mmap lock for writing and raises
 * the MMU notifier events of kernel-semantics §7 on every overlapping notifier
 * *before* the pages change, waiting for the callbacks.
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { BadAddress, InvalidArgument, OutOfMemory, PermissionDenied, VmaNotFound } from "../domain/Errors.ts"
import type { Prot } from "../domain/Prot.ts"
import type { VmaKind } from "../domain/Vma.ts"

/** Options of `Cpu.mmap` (`mmap(2)`). */
export interface MmapOptions {
  /** Bytes to map; a positive multiple of 4096. */
  readonly length: number
  /** Requested address (a hint unless `fixed`). */
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
}

/** Options of `Cpu.mremap` (`mremap(2)`). */
export interface MremapOptions {
  /** `MREMAP_FIXED`: move to exactly this address. */
  readonly newAddr?: number
  /** `MREMAP_DONTUNMAP`: move the pages, leave the old range mapped (and empty). */
  readonly dontUnmap?: boolean
}

/** The process's own view of its memory. */
export class Cpu extends Context.Service<Cpu, {
  /** `mmap(2)`: returns the start of the new mapping. Errors: bad length/addr/align → `InvalidArgument`; no room → `OutOfMemory`. */
  readonly mmap: (o: MmapOptions) => Effect.Effect<number, InvalidArgument | OutOfMemory>
  /** `munmap(2)`: unmaps `[addr, addr + length)` (holes are fine). Raises UNMAP first. */
  readonly munmap: (addr: number, length: number) => Effect.Effect<void, InvalidArgument>
  /** `mprotect(2)`: the whole window must be mapped (`VmaNotFound` otherwise). Raises PROTECTION_VMA first. */
  readonly mprotect: (addr: number, length: number, prot: Prot) => Effect.Effect<void, InvalidArgument | VmaNotFound>
  /** `madvise(MADV_DONTNEED)`: drops the pages (they read as zero after). Raises CLEAR first. */
  readonly madviseDontNeed: (addr: number, length: number) => Effect.Effect<void, InvalidArgument>
  /** `mremap(2)` with `MREMAP_MAYMOVE`: move, grow or shrink; returns the new address. Raises UNMAP on the old range. */
  readonly mremap: (addr: number, oldLength: number, newLength: number, o?: MremapOptions) => Effect.Effect<number, InvalidArgument>
  /** A CPU load: faults pages in (device-private pages migrate back first, `migrate_to_ram`). */
  readonly read: (addr: number, length: number) => Effect.Effect<Uint8Array, BadAddress>
  /** A CPU store: faults pages in for writing (breaking COW). */
  readonly write: (addr: number, bytes: Uint8Array) => Effect.Effect<void, BadAddress | PermissionDenied>
  /** `exit(2)`: the address space goes away (RELEASE on every notifier); `Mm.acquire` fails after. */
  readonly exit: Effect.Effect<void>
}>()("gpusvm/Cpu") {}
