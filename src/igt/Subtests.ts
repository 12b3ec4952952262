/**
 * The IGT `xe_exec_system_allocator` subtest matrix as data (issue #17 part 4).
 *
 * Mirrors `tests/intel/xe_exec_system_allocator.c` of intel-gpu/igt-gpu-tools
 * ({@link IGT_SOURCE}): its `sections[]`, `psections[]`, `esections[]`,
 * `msections[]` and `intel_get_pat_idx_functions[]` tables (name + flags, the
 * flag names are the C macros), the 25 family loops of `igt_main` (each a
 * call of `test_exec`, `threads` or `processes` with its arguments) and the
 * standalone subtests, in the order `igt_main` registers them. Which subtests
 * IGT itself returns from at once (vacuous) follows the early `return`s of
 * `test_exec`, `threads` and `processes` in that source.
 *
 * Pure data and functions: no services, nothing runs. What a subtest needs
 * that the model lacks is {@link needs}; `gpusvm simulate igt:<name>`
 * (src/igt/Generate.ts) reports it as `skipped: reason`.
 *
 * @since 0.1.0
 */

/**
 * The IGT source this table mirrors: repository, path and the commit read.
 *
 * @category constants
 */
export const IGT_SOURCE = {
  repo: "intel-gpu/igt-gpu-tools",
  path: "tests/intel/xe_exec_system_allocator.c",
  commit: "da668d6053cd2652279428fb45825f8232e56161"
} as const

/**
 * The flags of `test_exec` (the `#define`s after `partial()` in the source:
 * `MMAP` … `MADVISE_PAT_INDEX`), by their C names.
 *
 * @category models
 */
export type ExecFlag =
  | "MMAP" | "NEW" | "BO_UNMAP" | "FREE" | "BUSY" | "BO_MAP" | "RACE" | "SKIP_MEMSET" | "FAULT"
  | "FILE_BACKED" | "LOCK" | "MMAP_SHARED" | "HUGE_PAGE" | "SHARED_ALLOC" | "FORK_READ" | "FORK_READ_AFTER"
  | "MREMAP" | "DONTUNMAP" | "READ_ONLY_REMAP" | "SYNC_EXEC" | "EVERY_OTHER_CHECK" | "MULTI_FAULT"
  | "PREFETCH" | "THREADS" | "PROCESSES" | "PREFETCH_BENCHMARK" | "PREFETCH_SYS_BENCHMARK"
  | "MADVISE_SWIZZLE" | "MADVISE_OP" | "ATOMIC_BATCH" | "MIGRATE_ALL_PAGES" | "PREFERRED_LOC_ATOMIC_DEVICE"
  | "PREFERRED_LOC_ATOMIC_GL" | "PREFERRED_LOC_ATOMIC_CPU" | "MADVISE_MULTI_VMA" | "MADVISE_SPLIT_VMA"
  | "MADVISE_ATOMIC_VMA" | "PREFETCH_SPLIT_VMA" | "PREFETCH_CHANGE_ATTR" | "PREFETCH_SAME_ATTR"
  | "PREFERRED_LOC_ATOMIC_UND" | "MADVISE_ATOMIC_DEVICE" | "MADVISE_PAT_INDEX"

/**
 * The flags of `partial()` (`CPU_FAULT`, `REMAP`, `MIDDLE`, `ATOMIC_ACCESS`).
 *
 * @category models
 */
export type PartialFlag = "CPU_FAULT" | "REMAP" | "MIDDLE" | "ATOMIC_ACCESS"

/**
 * The flags of `many_allocs()` (`MIX_BO_ALLOC` … `CPU_FAULT_SAME_PAGE`).
 *
 * @category models
 */
export type AllocFlag = "MIX_BO_ALLOC" | "BENCHMARK" | "CPU_FAULT_THREADS" | "CPU_FAULT_PROCESS" | "CPU_FAULT_SAME_PAGE"

/**
 * Any flag of the source, by its C name.
 *
 * @category models
 */
export type Flag = ExecFlag | PartialFlag | AllocFlag

/**
 * One row of a section table of `igt_main` (`struct section`: name, flags;
 * for `intel_get_pat_idx_functions[]` also the PAT-index function `fn`).
 *
 * @category models
 */
export interface Section<F extends Flag = Flag> {
  readonly name: string
  readonly flags: ReadonlyArray<F>
  /** `intel_get_pat_idx_functions[]` only: the PAT-index getter the row passes to `test_exec`. */
  readonly pat?: string
}

const s = <F extends Flag>(name: string, ...flags: ReadonlyArray<F>): Section<F> => ({ name, flags })

/**
 * `sections[]` of `igt_main`: the 75 rows every family loop runs, in source order.
 *
 * @category constants
 */
export const SECTIONS: ReadonlyArray<Section<ExecFlag>> = [
  s("malloc"),
  s("malloc-madvise", "MADVISE_SWIZZLE"),
  s("malloc-prefetch", "PREFETCH"),
  s("malloc-prefetch-madvise", "PREFETCH", "MADVISE_SWIZZLE"),
  s("malloc-multi-fault", "MULTI_FAULT"),
  s("malloc-fork-read", "FORK_READ"),
  s("malloc-fork-read-after", "FORK_READ", "FORK_READ_AFTER"),
  s("malloc-mlock", "LOCK"),
  s("malloc-race", "RACE"),
  s("malloc-prefetch-race", "RACE", "PREFETCH"),
  s("malloc-busy", "BUSY"),
  s("malloc-bo-unmap", "BO_UNMAP"),
  s("mmap", "MMAP"),
  s("mmap-prefetch", "MMAP", "PREFETCH"),
  s("mmap-remap", "MMAP", "MREMAP"),
  s("mmap-remap-madvise", "MMAP", "MREMAP", "MADVISE_SWIZZLE"),
  s("mmap-remap-dontunmap", "MMAP", "MREMAP", "DONTUNMAP"),
  s("mmap-remap-ro", "MMAP", "MREMAP", "READ_ONLY_REMAP"),
  s("mmap-remap-ro-dontunmap", "MMAP", "MREMAP", "DONTUNMAP", "READ_ONLY_REMAP"),
  s("mmap-remap-eocheck", "MMAP", "MREMAP", "EVERY_OTHER_CHECK"),
  s("mmap-remap-dontunmap-eocheck", "MMAP", "MREMAP", "DONTUNMAP", "EVERY_OTHER_CHECK"),
  s("mmap-remap-ro-eocheck", "MMAP", "MREMAP", "READ_ONLY_REMAP", "EVERY_OTHER_CHECK"),
  s("mmap-remap-ro-dontunmap-eocheck", "MMAP", "MREMAP", "DONTUNMAP", "READ_ONLY_REMAP", "EVERY_OTHER_CHECK"),
  s("mmap-huge", "MMAP", "HUGE_PAGE"),
  s("mmap-shared", "MMAP", "LOCK", "MMAP_SHARED"),
  s("mmap-prefetch-shared", "MMAP", "LOCK", "MMAP_SHARED", "PREFETCH"),
  s("mmap-shared-remap", "MMAP", "LOCK", "MMAP_SHARED", "MREMAP"),
  s("mmap-shared-remap-dontunmap", "MMAP", "LOCK", "MMAP_SHARED", "MREMAP", "DONTUNMAP"),
  s("mmap-shared-remap-eocheck", "MMAP", "LOCK", "MMAP_SHARED", "MREMAP", "EVERY_OTHER_CHECK"),
  s("mmap-shared-remap-dontunmap-eocheck", "MMAP", "LOCK", "MMAP_SHARED", "MREMAP", "DONTUNMAP", "EVERY_OTHER_CHECK"),
  s("mmap-mlock", "MMAP", "LOCK"),
  s("mmap-file", "MMAP", "FILE_BACKED"),
  s("mmap-file-mlock", "MMAP", "LOCK", "FILE_BACKED"),
  s("mmap-race", "MMAP", "RACE"),
  s("free", "NEW", "FREE"),
  s("free-madvise", "NEW", "FREE", "MADVISE_SWIZZLE"),
  s("free-race", "NEW", "FREE", "RACE"),
  s("new", "NEW"),
  s("new-madvise", "NEW", "MADVISE_SWIZZLE"),
  s("new-prefetch", "NEW", "PREFETCH"),
  s("new-race", "NEW", "RACE"),
  s("new-bo-map", "NEW", "BO_MAP"),
  s("new-busy", "NEW", "BUSY"),
  s("mmap-free", "MMAP", "NEW", "FREE"),
  s("mmap-free-madvise", "MMAP", "NEW", "FREE", "MADVISE_SWIZZLE"),
  s("mmap-free-huge", "MMAP", "NEW", "FREE", "HUGE_PAGE"),
  s("mmap-free-race", "MMAP", "NEW", "FREE", "RACE"),
  s("mmap-new", "MMAP", "NEW"),
  s("mmap-new-madvise", "MMAP", "NEW", "MADVISE_SWIZZLE"),
  s("mmap-new-huge", "MMAP", "NEW", "HUGE_PAGE"),
  s("mmap-new-race", "MMAP", "NEW", "RACE"),
  s("malloc-nomemset", "SKIP_MEMSET"),
  s("malloc-mlock-nomemset", "SKIP_MEMSET", "LOCK"),
  s("malloc-race-nomemset", "SKIP_MEMSET", "RACE"),
  s("malloc-busy-nomemset", "SKIP_MEMSET", "BUSY"),
  s("malloc-bo-unmap-nomemset", "SKIP_MEMSET", "BO_UNMAP"),
  s("mmap-nomemset", "SKIP_MEMSET", "MMAP"),
  s("mmap-huge-nomemset", "SKIP_MEMSET", "MMAP", "HUGE_PAGE"),
  s("mmap-shared-nomemset", "SKIP_MEMSET", "MMAP", "MMAP_SHARED"),
  s("mmap-mlock-nomemset", "SKIP_MEMSET", "MMAP", "LOCK"),
  s("mmap-file-nomemset", "SKIP_MEMSET", "MMAP", "FILE_BACKED"),
  s("mmap-file-mlock-nomemset", "SKIP_MEMSET", "MMAP", "LOCK", "FILE_BACKED"),
  s("mmap-race-nomemset", "SKIP_MEMSET", "MMAP", "RACE"),
  s("free-nomemset", "SKIP_MEMSET", "NEW", "FREE"),
  s("free-race-nomemset", "SKIP_MEMSET", "NEW", "FREE", "RACE"),
  s("new-nomemset", "SKIP_MEMSET", "NEW"),
  s("new-race-nomemset", "SKIP_MEMSET", "NEW", "RACE"),
  s("new-bo-map-nomemset", "SKIP_MEMSET", "NEW", "BO_MAP"),
  s("new-busy-nomemset", "SKIP_MEMSET", "NEW", "BUSY"),
  s("mmap-free-nomemset", "SKIP_MEMSET", "MMAP", "NEW", "FREE"),
  s("mmap-free-huge-nomemset", "SKIP_MEMSET", "MMAP", "NEW", "FREE", "HUGE_PAGE"),
  s("mmap-free-race-nomemset", "SKIP_MEMSET", "MMAP", "NEW", "FREE", "RACE"),
  s("mmap-new-nomemset", "SKIP_MEMSET", "MMAP", "NEW"),
  s("mmap-new-huge-nomemset", "SKIP_MEMSET", "MMAP", "NEW", "HUGE_PAGE"),
  s("mmap-new-race-nomemset", "SKIP_MEMSET", "MMAP", "NEW", "RACE")
]

/**
 * `psections[]`: the `partial-%s` subtests (`partial()` flags).
 *
 * @category constants
 */
export const PSECTIONS: ReadonlyArray<Section<PartialFlag>> = [
  s("munmap-cpu-fault", "CPU_FAULT"),
  s("munmap-no-cpu-fault"),
  s("remap-cpu-fault", "CPU_FAULT", "REMAP"),
  s("remap-no-cpu-fault", "REMAP"),
  s("middle-munmap-cpu-fault", "MIDDLE", "CPU_FAULT"),
  s("middle-munmap-no-cpu-fault", "MIDDLE"),
  s("middle-remap-cpu-fault", "MIDDLE", "CPU_FAULT", "REMAP"),
  s("middle-remap-no-cpu-fault", "MIDDLE", "REMAP"),
  s("atomic-munmap-cpu-fault", "ATOMIC_ACCESS", "CPU_FAULT"),
  s("atomic-munmap-no-cpu-fault", "ATOMIC_ACCESS"),
  s("atomic-remap-cpu-fault", "ATOMIC_ACCESS", "CPU_FAULT", "REMAP"),
  s("atomic-remap-no-cpu-fault", "ATOMIC_ACCESS", "REMAP"),
  s("atomic-middle-munmap-cpu-fault", "ATOMIC_ACCESS", "MIDDLE", "CPU_FAULT"),
  s("atomic-middle-munmap-no-cpu-fault", "ATOMIC_ACCESS", "MIDDLE"),
  s("atomic-middle-remap-cpu-fault", "ATOMIC_ACCESS", "MIDDLE", "CPU_FAULT", "REMAP"),
  s("atomic-middle-remap-no-cpu-fault", "ATOMIC_ACCESS", "MIDDLE", "REMAP")
]

/**
 * `esections[]`: the `evict-%s` and `processes-evict-%s` subtests (`many_allocs()` flags).
 *
 * @category constants
 */
export const ESECTIONS: ReadonlyArray<Section<AllocFlag>> = [s("malloc"), s("malloc-mix-bo", "MIX_BO_ALLOC")]

/**
 * `msections[]`: the `madvise-%s` subtests (`test_exec` flags; the misspelling
 * `preffered` is IGT's).
 *
 * @category constants
 */
export const MSECTIONS: ReadonlyArray<Section<ExecFlag>> = [
  s("atomic-inc", "MADVISE_OP", "MADVISE_ATOMIC_DEVICE", "ATOMIC_BATCH"),
  s("preffered-loc-sram-migrate-pages", "MADVISE_OP", "MADVISE_SWIZZLE", "MIGRATE_ALL_PAGES", "ATOMIC_BATCH"),
  s("preffered-loc-atomic-vram", "MADVISE_OP", "PREFERRED_LOC_ATOMIC_DEVICE", "ATOMIC_BATCH"),
  s("preffered-loc-atomic-gl", "MADVISE_OP", "PREFERRED_LOC_ATOMIC_GL", "ATOMIC_BATCH"),
  s("preffered-loc-atomic-cpu", "MADVISE_OP", "PREFERRED_LOC_ATOMIC_CPU", "ATOMIC_BATCH"),
  s("preffered-loc-atomic-und", "MADVISE_OP", "PREFERRED_LOC_ATOMIC_UND", "ATOMIC_BATCH"),
  s("multi-vma", "MADVISE_OP", "MADVISE_MULTI_VMA", "ATOMIC_BATCH"),
  s("split-vma", "MADVISE_OP", "MADVISE_SPLIT_VMA", "ATOMIC_BATCH"),
  s("atomic-vma", "MADVISE_OP", "MADVISE_ATOMIC_VMA", "ATOMIC_BATCH"),
  s("split-vma-with-mapping", "MADVISE_OP", "PREFETCH", "PREFETCH_SPLIT_VMA", "ATOMIC_BATCH"),
  s("range-invalidate-change-attr", "MADVISE_OP", "PREFETCH", "PREFETCH_CHANGE_ATTR", "ATOMIC_BATCH"),
  s("no-range-invalidate-same-attr", "MADVISE_OP", "PREFETCH", "PREFETCH_SAME_ATTR", "ATOMIC_BATCH")
]

const pat = (name: string, fn: string, ...flags: ReadonlyArray<ExecFlag>): Section<ExecFlag> => ({ name, flags, pat: fn })

/**
 * `intel_get_pat_idx_functions[]`: the `pat-index-%s` subtests (flags and the PAT-index getter).
 *
 * @category constants
 */
export const PAT_SECTIONS: ReadonlyArray<Section<ExecFlag>> = [
  pat("madvise-pat-idx-wb-single-vma", "intel_get_pat_idx_wb", "MADVISE_OP", "MADVISE_PAT_INDEX"),
  pat("madvise-pat-idx-wb-multi-vma", "intel_get_pat_idx_wb", "MADVISE_OP", "MADVISE_PAT_INDEX", "MADVISE_MULTI_VMA"),
  pat("madvise-pat-idx-wt-single-vma", "intel_get_pat_idx_wt", "MADVISE_OP", "MADVISE_PAT_INDEX"),
  pat("madvise-pat-idx-wt-multi-vma", "intel_get_pat_idx_wt", "MADVISE_OP", "MADVISE_PAT_INDEX", "MADVISE_MULTI_VMA"),
  pat("madvise-pat-idx-uc-single-vma", "intel_get_pat_idx_uc", "MADVISE_OP", "MADVISE_PAT_INDEX"),
  pat("madvise-pat-idx-uc-multi-vma", "intel_get_pat_idx_uc", "MADVISE_OP", "MADVISE_PAT_INDEX", "MADVISE_MULTI_VMA"),
  pat("madvise-pat-idx-uc-comp-single-vma", "intel_get_pat_idx_uc_comp", "MADVISE_OP", "MADVISE_PAT_INDEX"),
  pat("madvise-pat-idx-uc-comp-multi-vma", "intel_get_pat_idx_uc_comp", "MADVISE_OP", "MADVISE_PAT_INDEX", "MADVISE_MULTI_VMA"),
  pat("madvise-max-pat-index-single-vma", "intel_get_max_pat_index", "MADVISE_OP", "MADVISE_PAT_INDEX"),
  pat("madvise-max-pat-index-multi-vma", "intel_get_max_pat_index", "MADVISE_OP", "MADVISE_PAT_INDEX", "MADVISE_MULTI_VMA")
]

const SZ_4K = 0x1000
const SZ_64K = 0x10000
const SZ_512K = 0x80000
const SZ_1M = 0x100000
const SZ_2M = 0x200000
const SZ_4M = 0x400000
const SZ_8M = 0x800000
const SZ_64M = 0x4000000

/**
 * The call an `igt_subtest` body makes, with its arguments as in the source
 * (`boSize` 0 = `test_exec` picks the size from `n_execs` and `stride`).
 * `test_exec`, `partial`, `many_allocs` and `test_compute` run once per
 * engine (`xe_for_each_engine`) unless `firstEngineOnly`; `threads` runs one
 * thread per engine, `processes` / `processes_evict` one child process per engine.
 *
 * @category models
 */
export type Call =
  | {
    readonly fn: "test_exec"
    readonly nExecQueues: number
    readonly nExecs: number
    readonly boSize: number
    readonly stride: number
    /** `pat-index-*`: the PAT-index getter passed as `pat_value`. */
    readonly pat?: string
  }
  | {
    readonly fn: "threads"
    readonly nExecQueues: number
    readonly nExecs: number
    readonly boSize: number
    readonly stride: number
    /** `true`: one VM bound once and shared by every thread; `false`: each thread's `test_exec` creates its own VM. */
    readonly sharedVm: boolean
  }
  | { readonly fn: "processes"; readonly nExecQueues: number; readonly nExecs: number; readonly boSize: number; readonly stride: number }
  | { readonly fn: "partial" }
  | {
    readonly fn: "many_allocs"
    /** Bytes in all, or the engine's GT's visible VRAM (`xe_visible_vram_size`). */
    readonly totalAlloc: number | "visible-vram"
    readonly allocSize: number
    readonly stride: number
    /** `unaligned-alloc` / `evict-*`: `break` after the first engine. */
    readonly firstEngineOnly: boolean
  }
  | { readonly fn: "processes_evict"; readonly allocSize: number; readonly stride: number }
  | { readonly fn: "test_compute"; readonly size: number }

/**
 * One family loop of `igt_main`'s `for (s = sections; …)`: the subtest name
 * is `<prefix>-<section>` and the body is `call` with the section's flags.
 *
 * @category models
 */
export interface Family {
  readonly prefix: string
  readonly call: Extract<Call, { readonly fn: "test_exec" | "threads" | "processes" }>
}

const exec = (prefix: string, nExecQueues: number, nExecs: number, boSize: number, stride = 0): Family => ({
  prefix,
  call: { fn: "test_exec", nExecQueues, nExecs, boSize, stride }
})
const threads = (prefix: string, nExecQueues: number, boSize: number, stride: number, sharedVm: boolean): Family => ({
  prefix,
  call: { fn: "threads", nExecQueues, nExecs: 128, boSize, stride, sharedVm }
})
const processes = (prefix: string, nExecQueues: number, boSize: number, stride: number): Family => ({
  prefix,
  call: { fn: "processes", nExecQueues, nExecs: 128, boSize, stride }
})

/**
 * The 25 family loops of `igt_main`, in source order, with the arguments of
 * their `test_exec(fd, hwe, n_exec_queues, n_execs, bo_size, stride, …)`,
 * `threads(fd, n_exec_queues, n_execs, bo_size, stride, flags, shared_vm)` or
 * `processes(fd, n_exec_queues, n_execs, bo_size, stride, flags)` call.
 *
 * @category constants
 */
export const FAMILIES: ReadonlyArray<Family> = [
  exec("once", 1, 1, 0),
  exec("once-large", 1, 1, SZ_2M),
  exec("twice", 1, 2, 0),
  exec("twice-large", 1, 2, SZ_2M),
  exec("many", 1, 128, 0),
  exec("many-stride", 1, 128, 0, 256),
  exec("many-execqueues", 16, 128, 0),
  exec("many-large", 1, 128, SZ_2M),
  exec("many-64k", 1, 128, SZ_64K),
  exec("many-large-execqueues", 16, 128, SZ_2M),
  threads("threads-many", 1, 0, 0, false),
  threads("threads-many-stride", 1, 0, 256, false),
  threads("threads-many-execqueues", 16, 0, 0, false),
  threads("threads-many-large", 1, SZ_2M, 0, false),
  threads("threads-many-large-execqueues", 16, SZ_2M, 0, false),
  threads("threads-shared-vm-many", 1, 0, 0, true),
  threads("threads-shared-vm-many-stride", 1, 0, 256, true),
  threads("threads-shared-vm-many-execqueues", 16, 0, 0, true),
  threads("threads-shared-vm-many-large", 1, SZ_2M, 0, true),
  threads("threads-shared-vm-many-large-execqueues", 16, SZ_2M, 0, true),
  processes("process-many", 1, 0, 0),
  processes("process-many-stride", 1, 0, 256),
  processes("process-many-execqueues", 16, 0, 0),
  processes("process-many-large", 1, SZ_2M, 0),
  processes("process-many-large-execqueues", 16, SZ_2M, 0)
]

/**
 * One IGT subtest: its name, where `igt_main` makes it (`family`: the family
 * prefix for the matrix, the loop or subtest name for standalones), the
 * section row (if any), the flags passed, the call and, if IGT returns at
 * once for it, why (`vacuous`).
 *
 * @category models
 */
export interface Subtest {
  readonly name: string
  /** Its position in `igt_main`'s registration order, from 0. */
  readonly index: number
  readonly kind: "matrix" | "standalone"
  /** Matrix: the family prefix (`once`, `threads-shared-vm-many-stride`, …); standalone: the loop (`partial`, `madvise`, …) or the subtest's own name. */
  readonly family: string
  /** The section row's name (`malloc`, `mmap-remap-ro`, …), or undefined for a single standalone subtest. */
  readonly section: string | undefined
  readonly flags: ReadonlyArray<Flag>
  readonly call: Call
  /** Set when IGT's own code returns at once (the subtest passes without doing anything): the source condition. */
  readonly vacuous: string | undefined
}

/**
 * Why IGT returns at once from a matrix subtest, following the source:
 * `threads()` returns if `(FILE_BACKED | FORK_READ) & flags`; `processes()`
 * if `flags & FORK_READ`; `test_exec()` (directly, or in every thread /
 * child) if `MULTI_FAULT` with `bo_size == 0`, or `EVERY_OTHER_CHECK` with
 * an odd `n_execs`. (`SHARED_ALLOC` also returns in `test_exec`, but
 * `threads()` clears it before calling `test_exec`, so no subtest is vacuous by it.)
 *
 * @category functions
 */
export const vacuousReason = (call: Call, flags: ReadonlyArray<Flag>): string | undefined => {
  const has = (f: Flag) => flags.includes(f)
  if (call.fn === "threads" && (has("FILE_BACKED") || has("FORK_READ"))) {
    return `threads() returns at once for ${has("FILE_BACKED") ? "FILE_BACKED" : "FORK_READ"}`
  }
  if (call.fn === "processes" && has("FORK_READ")) return "processes() returns at once for FORK_READ"
  if (call.fn === "test_exec" || call.fn === "threads" || call.fn === "processes") {
    if (has("MULTI_FAULT") && call.boSize === 0) return "test_exec() returns at once for MULTI_FAULT with bo_size 0"
    if (has("SHARED_ALLOC") && call.fn !== "threads") return "test_exec() returns at once for SHARED_ALLOC"
    if (has("EVERY_OTHER_CHECK") && call.nExecs % 2 === 1) return `test_exec() returns at once for EVERY_OTHER_CHECK with an odd n_execs (${call.nExecs})`
  }
  return undefined
}

type Standalone = Omit<Subtest, "index" | "vacuous">

const one = (name: string, call: Call, ...flags: ReadonlyArray<Flag>): Standalone => ({
  name,
  kind: "standalone",
  family: name,
  section: undefined,
  flags,
  call
})
const many = (prefix: string, table: ReadonlyArray<Section>, call: (row: Section) => Call): ReadonlyArray<Standalone> =>
  table.map((row) => ({ name: `${prefix}-${row.name}`, kind: "standalone", family: prefix, section: row.name, flags: row.flags, call: call(row) }))

const fourKAllocs = (totalAlloc: number, allocSize: number, firstEngineOnly = false): Call => ({
  fn: "many_allocs",
  totalAlloc,
  allocSize,
  stride: SZ_4K,
  firstEngineOnly
})

/** The standalone subtests after the family loops, in `igt_main` order. */
const standalones = (): ReadonlyArray<Standalone> => [
  one("prefetch-benchmark", { fn: "test_exec", nExecQueues: 1, nExecs: 128, boSize: SZ_64M, stride: 0 }, "PREFETCH", "PREFETCH_BENCHMARK"),
  one(
    "prefetch-sys-benchmark",
    { fn: "test_exec", nExecQueues: 1, nExecs: 128, boSize: SZ_64M, stride: 0 },
    "PREFETCH",
    "PREFETCH_BENCHMARK",
    "PREFETCH_SYS_BENCHMARK"
  ),
  one("threads-shared-vm-shared-alloc-many-stride-malloc", sharedAlloc(true), "SHARED_ALLOC"),
  one("threads-shared-vm-shared-alloc-many-stride-malloc-race", sharedAlloc(true), "RACE", "SHARED_ALLOC"),
  one("threads-shared-alloc-many-stride-malloc", sharedAlloc(false), "SHARED_ALLOC"),
  one("threads-shared-alloc-many-stride-malloc-sync", sharedAlloc(false), "SHARED_ALLOC", "SYNC_EXEC"),
  one("threads-shared-alloc-many-stride-malloc-race", sharedAlloc(false), "RACE", "SHARED_ALLOC"),
  one("fault", { fn: "test_exec", nExecQueues: 4, nExecs: 1, boSize: SZ_2M, stride: 0 }, "FAULT"),
  ...many("partial", PSECTIONS, () => ({ fn: "partial" })),
  one("unaligned-alloc", fourKAllocs((SZ_1M + SZ_512K) * 8, SZ_1M + SZ_512K, true)),
  one("fault-benchmark", fourKAllocs(SZ_64M, SZ_64M), "BENCHMARK"),
  one("fault-threads-benchmark", fourKAllocs(SZ_64M, SZ_64M), "BENCHMARK", "CPU_FAULT_THREADS"),
  one("fault-threads-same-page-benchmark", fourKAllocs(SZ_64M, SZ_64M), "BENCHMARK", "CPU_FAULT_THREADS", "CPU_FAULT_SAME_PAGE"),
  one("fault-process-benchmark", fourKAllocs(SZ_64M, SZ_64M), "BENCHMARK", "CPU_FAULT_PROCESS"),
  one("fault-process-same-page-benchmark", fourKAllocs(SZ_64M, SZ_64M), "BENCHMARK", "CPU_FAULT_PROCESS", "CPU_FAULT_SAME_PAGE"),
  ...many("evict", ESECTIONS, () => ({ fn: "many_allocs", totalAlloc: "visible-vram", allocSize: SZ_8M, stride: SZ_1M, firstEngineOnly: true })),
  ...many("processes-evict", ESECTIONS, () => ({ fn: "processes_evict", allocSize: SZ_8M, stride: SZ_1M })),
  ...many("madvise", MSECTIONS, () => ({ fn: "test_exec", nExecQueues: 1, nExecs: 1, boSize: SZ_64K, stride: 0 })),
  ...many("pat-index", PAT_SECTIONS, (row) => ({
    fn: "test_exec",
    nExecQueues: 1,
    nExecs: 1,
    boSize: SZ_4M,
    stride: 0,
    ...(row.pat === undefined ? {} : { pat: row.pat })
  })),
  one("compute", { fn: "test_compute", size: SZ_2M })
]

function sharedAlloc(sharedVm: boolean): Call {
  return { fn: "threads", nExecQueues: 1, nExecs: 128, boSize: 0, stride: 256, sharedVm }
}

let cache: ReadonlyArray<Subtest> | undefined

/**
 * Every subtest of `xe_exec_system_allocator`, in the order `igt_main`
 * registers them (which is `--list-subtests` order): for each row of
 * `sections[]` the 25 families, then the standalones. Computed once.
 *
 * @category functions
 */
export const allSubtests = (): ReadonlyArray<Subtest> => {
  if (cache !== undefined) return cache
  const out: Array<Subtest> = []
  for (const section of SECTIONS) {
    for (const family of FAMILIES) {
      out.push({
        name: `${family.prefix}-${section.name}`,
        index: out.length,
        kind: "matrix",
        family: family.prefix,
        section: section.name,
        flags: section.flags,
        call: family.call,
        vacuous: vacuousReason(family.call, section.flags)
      })
    }
  }
  for (const st of standalones()) out.push({ ...st, index: out.length, vacuous: vacuousReason(st.call, st.flags) })
  cache = out
  return out
}

let byName: ReadonlyMap<string, Subtest> | undefined

/**
 * The subtest of this name, or undefined.
 *
 * @category functions
 */
export const subtest = (name: string): Subtest | undefined => {
  byName ??= new Map(allSubtests().map((t) => [t.name, t]))
  return byName.get(name)
}

/**
 * A shell-style glob as an anchored regular expression: `*` any run of
 * characters, `?` one character, `[abc]` / `[a-z]` / `[!a]` a class; every
 * other character stands for itself.
 *
 * @category functions
 */
export const globToRegExp = (glob: string): RegExp => {
  let re = ""
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === "*") re += ".*"
    else if (c === "?") re += "."
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2)
      if (end < 0) re += "\\["
      else {
        let body = glob.slice(i + 1, end)
        const negate = body.startsWith("!")
        if (negate) body = body.slice(1)
        re += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`
        i = end
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&")
  }
  return new RegExp(`^${re}$`)
}

/**
 * The subtests whose name matches the glob (all of them without one), in IGT's order.
 *
 * @category functions
 */
export const matching = (glob?: string): ReadonlyArray<Subtest> => {
  if (glob === undefined) return allSubtests()
  const re = globToRegExp(glob)
  return allSubtests().filter((t) => re.test(t.name))
}

/**
 * Where a capability a subtest needs comes from: the IGT exec model (#17
 * part 3, `gpu-exec`: every subtest that executes batches has it), a CPU
 * mapping of a buffer object (`bo-cpu-map`: `xe_bo_map_fixed`, the `bo-mmap`
 * step), or nowhere (`outside`: a compute kernel). The wider world (#14:
 * fork, several processes, one VM per thread, mlock), Xe madvise attributes
 * (#17 part 1) and BOs with binds (#17 part 2) have landed too.
 *
 * @category models
 */
export type NeedSource = "#17 part 3" | "bo-cpu-map" | "outside"

/**
 * One capability a subtest needs (the exec model, a BO CPU mapping), or one the model lacks (`outside`).
 *
 * @category models
 */
export interface Need {
  readonly source: NeedSource
  readonly what: string
}

/**
 * The sources the model provides: a subtest that needs only these runs.
 *
 * @category constants
 */
export const PROVIDED: ReadonlyArray<NeedSource> = ["#17 part 3", "bo-cpu-map"]

/**
 * The skip text of each source (`gpusvm igt report` groups by it).
 *
 * @category constants
 */
export const SOURCE_TEXT: Record<NeedSource, string> = {
  "#17 part 3": "needs the IGT exec model (#17 part 3)",
  "bo-cpu-map": "needs a CPU mapping of a BO (xe_bo_map_fixed, the bo-mmap step)",
  "outside": "needs what the model does not mean to have"
}

/**
 * What a subtest needs, read from its call and flags (empty for a vacuous
 * subtest: IGT does nothing there). In order:
 * - a CPU mapping of a BO (`xe_bo_map_fixed`, `bo-mmap`): `BO_MAP`
 *   (`new-bo-map`: odd execs end by mapping a VRAM BO at a fresh address; the
 *   next exec's batch, store and check go through it) and `MIX_BO_ALLOC`
 *   (`*-evict-malloc-mix-bo`: odd allocations are such BOs, `touch_all_pages`
 *   / `check_all_pages` write and read them on the CPU);
 * - outside the model: `compute` runs a compute kernel;
 * - the exec model (#17 part 3): every other subtest (batches in memory,
 *   store dword, user fences, exec queues), which `gpu-exec` provides.
 *
 * Everything else the flags ask for exists: fork (`FORK_READ`,
 * `CPU_FAULT_PROCESS`), several processes (`processes()`,
 * `processes_evict()`), one VM per thread (`threads()` without a shared VM),
 * mlock, Xe madvise attributes (`MADVISE_*`, `PREFERRED_LOC_*`, …), BOs and
 * binds (`BO_UNMAP`, `MADVISE_SPLIT_VMA`) and the busy unbind (`BUSY`).
 *
 * @category functions
 */
export const needs = (t: Subtest): ReadonlyArray<Need> => {
  if (t.vacuous !== undefined) return []
  const has = (f: Flag) => t.flags.includes(f)
  const out: Array<Need> = []
  const add = (source: NeedSource, what: string) => out.push({ source, what })
  if (has("BO_MAP")) {
    add("bo-cpu-map", "BO_MAP: odd execs map a VRAM BO at a fresh address, the CPU memsets it, writes the next batch into it and reads the result through it")
  }
  if (has("MIX_BO_ALLOC")) {
    add("bo-cpu-map", "MIX_BO_ALLOC: odd allocations are VRAM BOs mapped at their address, the CPU writes the batches into them and checks the results through them")
  }
  if (t.call.fn === "test_compute") add("outside", "a compute kernel (run_intel_compute_kernel)")
  else add("#17 part 3", "IGT exec: batches in memory, store dword, user fences, exec queues, engines")
  return out
}

/**
 * The one-line reason `gpusvm simulate igt:<name>` prints as
 * `skipped: reason`, or undefined if the model lacks nothing (or the
 * subtest is vacuous): the needs the model does not provide ({@link PROVIDED}),
 * grouped by source.
 *
 * @category functions
 */
export const skipReason = (t: Subtest): string | undefined => {
  const list = needs(t).filter((n) => !PROVIDED.includes(n.source))
  if (list.length === 0) return undefined
  const bySource = new Map<NeedSource, Array<string>>()
  for (const n of list) bySource.set(n.source, [...(bySource.get(n.source) ?? []), n.what])
  return [...bySource].map(([source, whats]) => `${SOURCE_TEXT[source]}: ${whats.join("; ")}`).join("; ")
}
