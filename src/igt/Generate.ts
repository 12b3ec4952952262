/**
 * The IGT `xe_exec_system_allocator` subtests as scenarios (issue #17 part 4):
 * for a subtest of the table (`Subtests.ts`), the scenario IGT's code would
 * run, step for step, on a device the generator describes ({@link DEVICE}).
 *
 * One builder per function of the source (`BUILDERS`: `test_exec`, `threads`,
 * `processes`, `partial`, `many_allocs`, `processes_evict`, `test_compute`);
 * a builder reads the section's flags (the C names of `Subtests.ts`'s
 * `SECTIONS` rows) and the family's arguments (`FAMILIES` rows) exactly as
 * the C code does. The worlds (kernel-semantics §11.17, issue #17 part 5):
 * `igt_fork` is a `fork` step whose child is a process of the `processes`
 * form (`FORK_READ`, `processes()`, `processes_evict()`,
 * `CPU_FAULT_PROCESS`), a VM per thread is `vms` + the thread's `vm`,
 * `xe_vm_madvise` is `madvise` (`MADVISE_*`, `PREFERRED_LOC_*`,
 * `xe_vm_get_mem_attr_values_in_range` checked by `expect-attrs`), BOs and
 * binds are `bo-create` / `bo-bind` / `vm-bind` / `bo-destroy` and the busy
 * unbind an `expect-error` of `vm-unbind` (docs/igt.md "The worlds"). What the
 * model cannot do is read from `skipReason()` of `Subtests.ts` (a CPU mapping
 * of a BO, a compute kernel): such a subtest is `skipped` with the reason.
 *
 * Mappings are placed by the generator at fixed addresses, first fit upward
 * from 4 GiB like the simulated machine's `get_unmapped_area`, so `mremap`
 * targets (IGT's `__aligned_alloc` reservations) are known; generated
 * scenarios are for the simulated machine. `malloc` / `aligned_alloc` is an
 * anonymous private mapping and `free` its `munmap` (glibc's heap reuse of
 * small chunks is not modelled). `memset(p, 5, n)` is `cpu-write` of pattern
 * 5 (the bytes differ; only the touch matters, and the values IGT derives from
 * them, `WRITE_VALUE`, are computed from the same bytes). The binds' own
 * fence BO (`bind_ufence`) is not mapped: binds and prefetches complete
 * inside their step.
 *
 * Pure: no services.
 *
 * @since 0.4.0
 */
import { Exit } from "effect"
import { decodeScenario, type Scenario } from "../domain/Scenario.ts"
import { patternByte } from "../domain/scenario/Patterns.ts"
import { type Call, type Flag, IGT_SOURCE, skipReason, type Subtest } from "./Subtests.ts"

/**
 * The device the generator models: one GT with one engine
 * (`xe_for_each_engine` runs its body once, `threads()` starts one thread),
 * VRAM (`vram_if_possible` finds device memory, so `region` is non-zero), a
 * default alignment of 64 KiB (`xe_get_default_alignment`, a VRAM page) and a
 * command-streamer prefetch of 4 KiB (`xe_cs_prefetch_size`).
 *
 * @category constants
 */
export const DEVICE = {
  engines: 1,
  vram: true,
  defaultAlignment: 0x10000,
  csPrefetchSize: 0x1000,
  /**
   * The PAT indices of the `intel_get_pat_idx_*` getters the `pat-index-*`
   * rows pass: Xe2 / Xe3 (Lunar Lake), lib/intel_pat.c's fallback table
   * (uc 3, wt 15, wb 2, uc_comp 12, max_index 31).
   */
  pat: { intel_get_pat_idx_wb: 2, intel_get_pat_idx_wt: 15, intel_get_pat_idx_uc: 3, intel_get_pat_idx_uc_comp: 12, intel_get_max_pat_index: 31 }
} as const

const SZ_4K = 0x1000
const SZ_2M = 0x200000
const MMAP_BASE = 0x1_0000_0000
/**
 * `struct test_exec_data` of the source: its size and field offsets (batch[32], pad, vm_sync, exec_sync, data, expected_data).
 *
 * @category constants
 */
export const EXEC_DATA = { size: 160, batch: 0, vmSync: 136, execSync: 144, data: 152, expected: 156 } as const
/**
 * `struct batch_data` of the source (`touch_all_pages`): its size and field offsets (batch[16], pad, data, expected_data).
 *
 * @category constants
 */
export const BATCH_DATA = { size: 80, batch: 0, data: 72, expected: 76 } as const
/** `N_MULTI_FAULT`. */
const N_MULTI_FAULT = 4

const align = (n: number, a: number) => Math.ceil(n / a) * a
/**
 * IGT's `xe_bb_size(fd, size)`: `ALIGN(size + xe_cs_prefetch_size(fd), xe_get_default_alignment(fd))` on {@link DEVICE}.
 *
 * @category functions
 */
export const bbSize = (size: number): number => align(size + DEVICE.csPrefetchSize, DEVICE.defaultAlignment)

/**
 * What the generator makes of a subtest: a scenario to run, IGT's own early
 * return (`vacuous`), or what the model lacks (`skipped`).
 *
 * @category models
 */
export type Built =
  | { readonly kind: "scenario"; readonly scenario: Scenario; readonly file: ScenarioJson }
  | { readonly kind: "vacuous"; readonly reason: string }
  | { readonly kind: "skipped"; readonly reason: string }

/** A step as written in a scenario file. */
type StepJson = Record<string, unknown> & { readonly op: string }
/**
 * A generated scenario file as JSON (what `decodeScenario` reads).
 *
 * @category models
 */
export interface ScenarioJson {
  readonly name: string
  readonly description: string
  /** The one process's GPU VMs (one per thread for `threads()` without a shared VM). */
  readonly vms?: ReadonlyArray<string>
  readonly threads?: ReadonlyArray<ThreadJson>
  /** With `fork` steps (`FORK_READ`, `processes()`, …): the main process first, then every fork's child. */
  readonly processes?: ReadonlyArray<{ readonly name: string; readonly vms?: ReadonlyArray<string>; readonly threads?: ReadonlyArray<ThreadJson>; readonly steps?: ReadonlyArray<StepJson> }>
}

/** One thread as written: its VM (if not the process's first) and its steps. */
type ThreadJson = { readonly vm?: string; readonly steps: ReadonlyArray<StepJson> }

/** What a build collects beside the main process's threads: the children its `fork` steps start. */
interface World {
  readonly forks: Array<{ readonly name: string; readonly steps: ReadonlyArray<StepJson> }>
}

/** The address space as the generator lays it out: first fit upward from 4 GiB (the simulated `get_unmapped_area`). */
class Space {
  private list: Array<[number, number]> = []
  place(length: number, alignment: number): number {
    let at = align(MMAP_BASE, alignment)
    for (const [s, e] of this.list) {
      if (at + length <= s) break
      if (e > at) at = align(e, alignment)
    }
    this.take(at, length)
    return at
  }
  take(start: number, length: number): void {
    this.free(start, length)
    this.list.push([start, start + length])
    this.list.sort((a, b) => a[0] - b[0])
  }
  free(start: number, length: number): void {
    const end = start + length
    const out: Array<[number, number]> = []
    for (const [s, e] of this.list) {
      if (e <= start || s >= end) out.push([s, e])
      else {
        if (s < start) out.push([s, start])
        if (e > end) out.push([end, e])
      }
    }
    this.list = out
  }
}

/** A tiny deterministic PRNG for IGT's `rand()` (seeded by the subtest name). */
const prng = (name: string) => {
  let x = 2166136261
  for (let i = 0; i < name.length; i++) x = Math.imul(x ^ name.charCodeAt(i), 16777619) >>> 0
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x & 0x7fffffff
  }
}

/** One thread's program being built: its steps, the shared space and names, its VM, the build's forks. */
class Program {
  readonly steps: Array<StepJson> = []
  private n = 0
  readonly space: Space
  readonly rand: () => number
  readonly prefix: string
  readonly world: World
  /** The VM the thread's GPU steps use (undefined: the process's first). */
  vm: string | undefined
  constructor(space: Space, rand: () => number, prefix: string, world: World) {
    this.space = space
    this.rand = rand
    this.prefix = prefix
    this.world = world
  }
  /** `igt_fork`: a child process that runs `steps` (it sees this process's buffers copy-on-write); returns its name. */
  fork(steps: ReadonlyArray<StepJson>): string {
    const as = this.name("child")
    this.world.forks.push({ name: as, steps })
    this.push({ op: "fork", as })
    return as
  }
  name(base: string): string {
    return `${this.prefix}${base}${this.n++}`
  }
  push(step: StepJson): void {
    this.steps.push(step)
  }
  /** `mmap` at a generator-chosen address (or `at`), returns its name and address. */
  mmap(base: string, length: number, alignment: number, o: { kind?: string; shared?: boolean; prot?: string; at?: number; locked?: boolean } = {}) {
    const as = this.name(base)
    const addr = o.at ?? this.space.place(length, alignment)
    if (o.at !== undefined) this.space.take(o.at, length)
    this.push({
      op: "mmap",
      as,
      length,
      addr,
      fixed: true,
      ...(o.kind === undefined ? {} : { kind: o.kind }),
      ...(o.shared === true ? { shared: true } : {}),
      ...(o.prot === undefined ? {} : { prot: o.prot }),
      ...(o.locked === true ? { locked: true } : {})
    })
    return { as, addr, length }
  }
  munmap(b: { as: string; addr: number; length: number }, offset = 0, length?: number): void {
    this.push({ op: "munmap", buf: b.as, ...(length === undefined ? {} : { offset, length }) })
    this.space.free(b.addr + offset, length ?? b.length)
  }
  /** `memset(p, 5, n)`. */
  memset(buf: string, offset: number, length: number): void {
    this.push({ op: "cpu-write", buf, ...(offset === 0 ? {} : { offset }), length, pattern: 5 })
  }
}

type Buf = { as: string; addr: number; length: number }

/** `WRITE_VALUE(data, i)`: `expected_data` if set (the memset bytes), else `rand() << 12 | i`. */
const writeValue = (p: Program, memset: boolean, expectedOffset: number, i: number): number => {
  if (memset) {
    let v = 0
    for (let k = 3; k >= 0; k--) v = v * 256 + patternByte(5, expectedOffset + k)
    if (v !== 0) return v >>> 0
  }
  return ((p.rand() << 12) | i) >>> 0
}

const has = (t: Subtest) => (f: Flag) => t.flags.includes(f)

/** A `madvise` step over `[offset, offset + length)` of the buffer (`xe_vm_madvise` of that window). */
const madvise = (p: Program, buf: Buf, offset: number, length: number, attrs: Record<string, unknown>): void => {
  p.push({ op: "madvise", buf: buf.as, ...(offset === 0 ? {} : { offset }), length, ...attrs })
}

/** `xe_vm_madvise_migrate_pages`: preferred location system, `DRM_XE_MIGRATE_ALL_PAGES`. */
const migratePages = (p: Program, buf: Buf, length: number): void =>
  madvise(p, buf, 0, length, { preferredLoc: "system", migrationPolicy: "all-pages" })

/** The `PREFERRED_LOC_ATOMIC_*` flags of `xe_vm_parse_execute_madvise` and the atomic attribute each sets. */
const PREFERRED_LOC_ATOMIC: ReadonlyArray<readonly [Flag, string]> = [
  ["PREFERRED_LOC_ATOMIC_UND", "undefined"],
  ["PREFERRED_LOC_ATOMIC_DEVICE", "device"],
  ["PREFERRED_LOC_ATOMIC_GL", "global"],
  ["PREFERRED_LOC_ATOMIC_CPU", "cpu"]
]

/**
 * `xe_vm_parse_execute_madvise(fd, vm, data, bo_size, eci, addr, flags, sync, pat_value)`.
 * `MADVISE_SPLIT_VMA` binds a BO over the second half and the mirror over it
 * again; the model binds a whole BO, so the BO is half the size IGT creates
 * (IGT: a `bo_size` BO bound for `bo_size / 2`). `MADVISE_PAT_INDEX` checks
 * the PAT of every attribute range (`xe_vm_get_mem_attr_values_in_range`):
 * `expect-attrs` with the ranges the cuts make.
 */
const parseExecuteMadvise = (p: Program, t: Subtest, data: Buf, boSize: number): ReadonlyArray<Buf> => {
  const f = has(t)
  const bs = align(boSize, SZ_4K)
  // MADVISE_MULTI_VMA madvises past the buffer (Xe's madvise works on GPU VMAs, the mirror covers every address); the
  // model's madvise takes a buffer window, so a PROT_NONE mapping there names it (never touched; unmapped at cleanup)
  const past: Array<Buf> = []
  const pastBuffer = (): Buf => {
    const b = past[0] ?? p.mmap("past", bs, SZ_4K, { at: data.addr + bs, prot: "none" })
    past[0] = b
    return b
  }
  if (f("MADVISE_ATOMIC_DEVICE")) madvise(p, data, 0, boSize, { atomic: "device" })
  for (const [flag, atomic] of PREFERRED_LOC_ATOMIC) {
    if (!f(flag)) continue
    migratePages(p, data, boSize)
    madvise(p, data, 0, boSize, { atomic })
  }
  if (f("MADVISE_MULTI_VMA")) {
    madvise(p, data, bs / 2, bs / 2, { atomic: "device" })
    madvise(p, data, bs / 2, bs / 2, { pat: DEVICE.pat.intel_get_pat_idx_wb })
    madvise(p, pastBuffer(), 0, bs, { atomic: "device" })
    madvise(p, data, 0, bs, { pat: DEVICE.pat.intel_get_pat_idx_wb })
  }
  if (f("MADVISE_SPLIT_VMA")) {
    const bo = p.name("bo")
    p.push({ op: "bo-create", as: bo, length: bs / 2 })
    p.push({ op: "bo-bind", bo, buf: data.as, offset: bs / 2 })
    p.push({ op: "vm-bind", buf: data.as, offset: bs / 2, length: bs / 2 })
    p.push({ op: "cpu-write", buf: data.as, offset: EXEC_DATA.vmSync, length: 8, pattern: 0 })
    p.push({ op: "bo-destroy", bo })
    madvise(p, data, 0, bs / 2, { atomic: "global" })
  }
  if (f("MADVISE_PAT_INDEX") && t.call.fn === "test_exec" && t.call.pat !== undefined) {
    const pat = DEVICE.pat[t.call.pat as keyof typeof DEVICE.pat]
    let ranges: ReadonlyArray<readonly [number, number]> = [[0, bs]]
    if (f("MADVISE_MULTI_VMA")) {
      madvise(p, pastBuffer(), 0, bs / 2, { pat })
      madvise(p, data, 0, bs, { pat })
      madvise(p, data, bs / 2, bs / 4, { pat })
      ranges = [[0, bs / 2], [bs / 2, bs / 4], [(3 * bs) / 4, bs / 4]] // Xe splits at every window end, never merges
    } else madvise(p, data, 0, bs, { pat })
    p.push({ op: "expect-attrs", buf: data.as, length: bs, ranges: ranges.map(([offset, length]) => ({ offset, length, pat })) })
  }
  return past
}

/**
 * `madvise_prefetch_op(fd, vm, addr, bo_size, flags, data)`. The attribute
 * queries it makes are not asserted by IGT and are left out.
 * `PREFETCH_CHANGE_ATTR`: IGT's prefetch and second madvise sit after the
 * `return` inside `if (!mem_attrs) { … }`, so they never run; only the first
 * madvise does, as here.
 */
const madvisePrefetchOp = (p: Program, t: Subtest, data: Buf, boSize: number): void => {
  const f = has(t)
  if (f("PREFETCH_SPLIT_VMA")) {
    const bs = align(boSize, SZ_4K)
    p.push({ op: "prefetch", buf: data.as, length: bs, to: "system" })
    migratePages(p, data, bs / 2)
  } else if (f("PREFETCH_SAME_ATTR")) {
    madvise(p, data, 0, boSize, { atomic: "global" })
    // DRM_XE_CONSULT_MEM_ADVISE_PREF_LOC: the preferred location, the device (the default) here
    p.push({ op: "prefetch", buf: data.as, length: boSize, to: "vram" })
    madvise(p, data, 0, boSize / 2, { atomic: "global" })
  } else if (f("PREFETCH_CHANGE_ATTR")) madvise(p, data, 0, boSize, { atomic: "global" })
}

/** `test_exec(fd, eci, n_exec_queues, n_execs, bo_size, stride, vm, alloc, barrier, flags, pat_value)` for one engine. */
const testExec = (
  p: Program,
  t: Subtest,
  call: { nExecQueues: number; nExecs: number; boSize: number; stride: number },
  alloc?: { buf: Buf; base: number }
): void => {
  const f = has(t)
  const { nExecQueues, nExecs, stride } = call
  let boSize = call.boSize
  const origSize = boSize
  let alignedSize = boSize || DEVICE.defaultAlignment
  if (f("MULTI_FAULT")) boSize *= N_MULTI_FAULT
  if (!boSize) boSize = bbSize(stride ? stride * nExecs * EXEC_DATA.size : EXEC_DATA.size * nExecs)
  if (f("HUGE_PAGE")) {
    alignedSize = align(alignedSize, SZ_2M)
    boSize = align(boSize, SZ_2M)
  }
  const memsetOn = !f("SKIP_MEMSET")
  const atomicBatch = f("ATOMIC_BATCH") ? { atomic: true } : {}
  let data: Buf
  let base = 0
  if (alloc !== undefined) {
    data = alloc.buf
    base = alloc.base
  } else {
    // MMAP: __aligned_alloc reservation + MAP_FIXED mmap over it; else aligned_alloc
    data = f("MMAP")
      ? p.mmap("data", boSize, alignedSize, {
        ...(f("FILE_BACKED") ? { kind: "file" } : f("HUGE_PAGE") ? { kind: "hugetlb" } : {}),
        ...(f("MMAP_SHARED") ? { shared: true } : {})
      })
      : p.mmap("data", boSize, alignedSize)
    if (memsetOn) p.memset(data.as, 0, boSize)
    if (f("LOCK")) p.push({ op: "mlock", buf: data.as })
  }
  // bind_system_allocator(sync at data[0].vm_sync): the bind's user fence, then data[0].vm_sync = 0
  p.push({ op: "cpu-write", buf: data.as, offset: base + EXEC_DATA.vmSync, length: 8, pattern: 0 })
  const past = f("MADVISE_OP") ? parseExecuteMadvise(p, t, data, boSize) : []
  if (f("BO_UNMAP")) {
    // a VRAM BO bound at the buffer, the mirror bound over it again at once, gem_close
    const bo = p.name("bo")
    p.push({ op: "bo-create", as: bo, length: boSize })
    p.push({ op: "bo-bind", bo, buf: data.as })
    p.push({ op: "vm-bind", buf: data.as, length: boSize })
    p.push({ op: "cpu-write", buf: data.as, offset: base + EXEC_DATA.vmSync, length: 8, pattern: 0 })
    p.push({ op: "bo-destroy", bo })
  }
  let ufence: Buf | undefined
  if (!f("RACE")) {
    ufence = p.mmap("ufence", SZ_4K, SZ_4K, { shared: true })
    p.memset(ufence.as, 0, SZ_4K)
  }
  let region: "vram" | "system" = DEVICE.vram ? "vram" : "system"
  const prefetch = !f("FAULT") && f("PREFETCH")
  if (prefetch) {
    if (f("RACE") || f("FILE_BACKED") || f("LOCK") || f("MMAP_SHARED") || f("HUGE_PAGE") || region === "system") {
      region = "system"
      p.push({ op: "prefetch", buf: data.as, ...(base ? { offset: base } : {}), length: boSize, to: "system" })
    }
    if (ufence !== undefined) p.push({ op: "prefetch", buf: ufence.as, to: "system" })
  }
  const prefetchOp = f("PREFETCH") && (f("PREFETCH_SPLIT_VMA") || f("PREFETCH_SAME_ATTR") || f("PREFETCH_CHANGE_ATTR"))
  const pending: Array<Buf> = []
  let nextData: Buf | undefined
  let prevIdx = 0
  const values = new Map<number, number>() // idx → the value its batch stores (READ_VALUE)
  // BO_MAP: the BO mapped at `data` (undefined: `data` is ordinary memory)
  let bo: string | undefined
  const dropBo = (name: string) => {
    p.push({ op: "vm-bind", buf: data.as, length: boSize })
    p.munmap(data)
    p.push({ op: "bo-destroy", bo: name })
  }
  const at = (idx: number, field: number) => base + idx * EXEC_DATA.size + field
  const valueOf = (idx: number) => {
    let v = values.get(idx)
    if (v === undefined) values.set(idx, v = writeValue(p, memsetOn || alloc !== undefined, at(idx, EXEC_DATA.expected), idx))
    return v
  }
  for (let i = 0; i < nExecs; i++) {
    const idx = stride ? i * stride : i
    const nextIdx = stride ? (i + 1) * stride : i + 1
    const e = i % nExecQueues
    const faultInject = f("FAULT") && i === Math.floor(nExecs / 2)
    // madvise_swizzle_op_exec: even execs prefer system memory, odd ones the device
    if (f("MADVISE_SWIZZLE")) madvise(p, data, 0, boSize, { preferredLoc: i % 2 === 0 ? "system" : "device" })
    const batch = { buf: data.as, offset: at(idx, EXEC_DATA.batch) }
    let stores: Array<{ buf: string; offset: number }> = [{ buf: data.as, offset: at(idx, EXEC_DATA.data) }]
    let writeNow = true // the exec's gpu-exec writes its own batch (nothing sits between write and exec)
    if (f("MULTI_FAULT")) {
      stores = Array.from({ length: N_MULTI_FAULT }, (_, j) => ({ buf: data.as, offset: at(idx, EXEC_DATA.data) + j * origSize }))
    } else if (f("EVERY_OTHER_CHECK") && i % 2 === 0) {
      // write this exec's batch, reserve the next location, write the next exec's batch storing there
      p.push({ op: "gpu-exec", batch, store: stores[0], value: valueOf(idx), ...atomicBatch, exec: false })
      const res = p.mmap("next", boSize, alignedSize, { prot: "none" })
      nextData = res
      p.push({ op: "gpu-exec", batch: { buf: data.as, offset: at(nextIdx, EXEC_DATA.batch) }, store: { buf: res.as, offset: at(nextIdx, EXEC_DATA.data) }, value: valueOf(nextIdx), ...atomicBatch, exec: false })
      writeNow = false
    } else if (f("EVERY_OTHER_CHECK")) writeNow = false // odd: the batch was written at i - 1 and moved with the buffer
    const fence = ufence !== undefined ? { buf: ufence.as } : { buf: data.as, offset: at(idx, EXEC_DATA.execSync) }
    const doPrefetch = prefetch && (region === "vram" || f("NEW") || f("MREMAP"))
    const store = stores.length === 1 ? stores[0] : stores
    if ((doPrefetch || prefetchOp) && writeNow) {
      p.push({ op: "gpu-exec", batch, store, value: valueOf(idx), ...atomicBatch, exec: false })
      writeNow = false
    }
    if (prefetchOp && !f("MULTI_FAULT") && !f("EVERY_OTHER_CHECK")) madvisePrefetchOp(p, t, data, boSize)
    if (doPrefetch) p.push({ op: "prefetch", buf: data.as, ...(base ? { offset: base } : {}), length: boSize, to: region })
    // anything between the wait and the check (munlock, mremap, a fork) moves the check to expect-dword
    const lockNow = f("LOCK") && i === 0
    const checkEvery = !f("EVERY_OTHER_CHECK") || i % 2 === 1
    const deferCheck = lockNow || f("MREMAP") || f("PREFETCH_SYS_BENCHMARK") || f("FORK_READ")
    const exec: StepJson = {
      op: "gpu-exec",
      batch,
      store,
      value: valueOf(idx),
      ...atomicBatch,
      ...(writeNow ? {} : { writeBatch: false }),
      fence,
      ...(ufence === undefined ? { fenceReset: "before" } : {}),
      queue: e,
      ...(faultInject ? { badBatch: true } : {}),
      ...(faultInject || !checkEvery || deferCheck ? { check: false } : {})
    }
    // PREFERRED_LOC_ATOMIC_CPU / _UND: IGT waits a quarter second and, if the fence times out (the atomic refused,
    // EACCES), goes to cleanup; otherwise it checks as usual. Both outcomes pass in IGT; the model's is the check.
    p.push(exec)
    if (faultInject) continue
    if (lockNow) p.push({ op: "munlock", buf: data.as })
    if (f("MREMAP")) {
      const old = data
      if (f("READ_ONLY_REMAP")) p.push({ op: "mprotect", buf: old.as, prot: "r" })
      const target = nextData ?? p.mmap("next", boSize, alignedSize, { prot: "none" })
      nextData = undefined
      const as = p.name("data")
      p.push({ op: "mremap", buf: old.as, newLength: boSize, as, newAddr: target.addr, ...(f("DONTUNMAP") ? { dontUnmap: true } : {}) })
      p.space.take(target.addr, boSize)
      if (!f("DONTUNMAP")) p.space.free(old.addr, boSize)
      data = { as, addr: target.addr, length: boSize }
      if (f("READ_ONLY_REMAP")) p.push({ op: "mprotect", buf: data.as, prot: "rw" })
      if (f("DONTUNMAP")) p.munmap(old)
    }
    if (checkEvery) {
      const read: StepJson = { op: "expect-dword", buf: data.as, offset: at(idx, EXEC_DATA.data), value: valueOf(idx) }
      if (f("FORK_READ")) {
        // igt_fork: the child reads the result on the CPU; the parent before (or, FORK_READ_AFTER, after) igt_waitchildren
        const child = p.fork([read])
        if (!f("FORK_READ_AFTER")) p.push(read)
        p.push({ op: "wait", process: child })
        if (f("FORK_READ_AFTER")) p.push(read)
      } else {
        if (deferCheck) for (const s of stores) p.push({ op: "expect-dword", buf: data.as, offset: s.offset, value: valueOf(idx) })
        if (f("PREFETCH_SYS_BENCHMARK")) p.push({ op: "prefetch", buf: data.as, length: boSize, to: "system" })
        else if (f("PREFETCH_BENCHMARK")) p.memset(data.as, 0, boSize)
      }
      if (f("EVERY_OTHER_CHECK")) p.push({ op: "expect-dword", buf: data.as, offset: at(prevIdx, EXEC_DATA.data), value: valueOf(prevIdx) })
    }
    // a BO mapped by the previous exec (BO_MAP): the mirror bound over it again, munmap, gem_close
    if (bo !== undefined) dropBo(bo)
    if (f("NEW")) {
      if (bo === undefined) {
        if (f("FREE")) p.munmap(data)
        else pending.push(data)
      }
      values.clear()
      if (f("BO_MAP") && !f("MMAP") && i % 2 === 1) {
        // __aligned_alloc(aligned_size, bo_size) + partial free; a VRAM BO mapped there (xe_bo_map_fixed) and bound
        data = p.mmap("data", boSize, alignedSize, { prot: "none" })
        bo = p.name("bo")
        p.push({ op: "bo-create", as: bo, length: boSize })
        p.push({ op: "bo-mmap", bo, buf: data.as })
        p.push({ op: "bo-bind", bo, buf: data.as })
      } else {
        bo = undefined
        // MMAP: mmap(NULL, bo_size, RW, MAP_SHARED | MAP_ANONYMOUS); else aligned_alloc(aligned_size, bo_size)
        data = f("MMAP") ? p.mmap("data", boSize, SZ_4K, { shared: true }) : p.mmap("data", boSize, alignedSize)
      }
      if (memsetOn) p.memset(data.as, 0, boSize)
    }
    prevIdx = idx
  }
  // cleanup
  const boAtEnd = bo !== undefined
  if (bo !== undefined) dropBo(bo)
  if (f("BUSY")) p.push({ op: "expect-error", step: { op: "vm-unbind" }, tag: "Busy" }) // unbind_system_allocator() == -EBUSY
  if (ufence !== undefined) p.munmap(ufence)
  if (f("LOCK") && alloc === undefined) p.push({ op: "munlock", buf: data.as })
  for (const b of pending) p.munmap(b)
  if (alloc === undefined && !boAtEnd) p.munmap(data)
  for (const b of past) p.munmap(b)
}

/** `partial(fd, eci, flags)`. */
const partial = (p: Program, t: Subtest): void => {
  const f = has(t)
  const boSize = SZ_2M
  const unmapOffset = f("MIDDLE") ? boSize / 4 : 0
  const atomic = f("ATOMIC_ACCESS")
  const res = p.mmap("res", boSize * 2, SZ_4K, { prot: "none" }) // __aligned_alloc(bo_size, bo_size)
  const ptr = align(res.addr, boSize)
  const data = p.mmap("data", boSize, SZ_4K, { at: ptr })
  p.memset(data.as, 0, boSize)
  p.push({ op: "cpu-write", buf: data.as, offset: EXEC_DATA.vmSync, length: 8, pattern: 0 })
  const ufence = p.mmap("ufence", SZ_4K, SZ_4K, { shared: true })
  p.memset(ufence.as, 0, SZ_4K)
  // the two batches: data[0] at old, data[1] of the struct array at old + unmap_offset + bo_size / 2
  const structAt = [0, unmapOffset + boSize / 2]
  const slot = (i: number, field: number) => structAt[i]! + i * EXEC_DATA.size + field
  const values = [0, 1].map((i) => writeValue(p, true, slot(i, EXEC_DATA.expected), i))
  for (const i of [0, 1]) {
    p.push({ op: "gpu-exec", batch: { buf: data.as, offset: slot(i, EXEC_DATA.batch) }, store: { buf: data.as, offset: slot(i, EXEC_DATA.data) }, value: values[i]!, ...(atomic ? { atomic: true } : {}), exec: false })
  }
  let fresh: Buf | undefined
  for (const i of [0, 1]) {
    const check = i === 1 || f("CPU_FAULT")
    p.push({
      op: "gpu-exec",
      batch: { buf: data.as, offset: slot(i, EXEC_DATA.batch) },
      store: { buf: data.as, offset: slot(i, EXEC_DATA.data) },
      value: values[i]!,
      ...(atomic ? { atomic: true } : {}),
      writeBatch: false,
      fence: { buf: fresh?.as ?? ufence.as },
      ...(check ? {} : { check: false })
    })
    if (i === 0) {
      p.push({ op: "munmap", buf: data.as, offset: unmapOffset, length: boSize / 2 })
      p.space.free(ptr + unmapOffset, boSize / 2)
      if (f("REMAP")) fresh = p.mmap("new", boSize / 2, SZ_4K, { at: ptr + unmapOffset, locked: true })
    }
  }
  p.munmap(ufence)
  p.munmap(res) // __aligned_free: the whole reservation, data and the new mapping in it
}

/** `many_allocs(fd, eci, total_alloc, alloc_size, stride, barrier, flags)`. */
const manyAllocs = (p: Program, t: Subtest, call: Extract<Call, { fn: "many_allocs" }>, vramBytes: number, checkers: Array<Program>): void => {
  const f = has(t)
  const total = call.totalAlloc === "visible-vram" ? vramBytes : call.totalAlloc
  const numAllocs = f("BENCHMARK") ? 1 : Math.floor((9 * Math.floor(total / call.allocSize)) / 8)
  const allocs: Array<{ buf: Buf; base: number; bo: string | undefined; values: Array<number> }> = []
  const nWrites = Math.floor(call.allocSize / call.stride)
  for (let a = 0; a < numAllocs; a++) {
    let buf: Buf
    let base = 0
    let bo: string | undefined
    if (f("MIX_BO_ALLOC") && a % 2 === 1) {
      // __aligned_alloc(SZ_2M, alloc_size): a PROT_NONE reservation of alloc_size + 2 MiB, the 2 MiB-aligned
      // pointer in it; a VRAM BO mapped there (xe_bo_map_fixed) and bound (xe_vm_bind_async)
      buf = p.mmap("res", call.allocSize + SZ_2M, SZ_4K, { prot: "none" })
      base = align(buf.addr, SZ_2M) - buf.addr
      bo = p.name("bo")
      p.push({ op: "bo-create", as: bo, length: call.allocSize })
      p.push({ op: "bo-mmap", bo, buf: buf.as, ...(base === 0 ? {} : { offset: base }) })
      p.push({ op: "bo-bind", bo, buf: buf.as, ...(base === 0 ? {} : { offset: base }) })
    } else buf = p.mmap("alloc", call.allocSize, SZ_2M) // aligned_alloc(SZ_2M, alloc_size)
    // touch_all_pages: a user fence page, every batch written, every exec (the last with the fence), one wait
    const ufence = p.mmap("ufence", SZ_4K, SZ_4K, { shared: true })
    p.memset(ufence.as, 0, SZ_4K)
    const values: Array<number> = []
    for (let i = 0; i < nWrites; i++) {
      values.push(writeValue(p, false, 0, i))
      p.push({ op: "gpu-exec", batch: { buf: buf.as, offset: base + i * call.stride }, store: { buf: buf.as, offset: base + i * call.stride + BATCH_DATA.data }, value: values[i]!, exec: false })
    }
    for (let i = 0; i < nWrites; i++) {
      p.push({
        op: "gpu-exec",
        batch: { buf: buf.as, offset: base + i * call.stride },
        store: { buf: buf.as, offset: base + i * call.stride + BATCH_DATA.data },
        value: values[i]!,
        writeBatch: false,
        ...(i + 1 === nWrites ? { fence: { buf: ufence.as } } : {}),
        check: false
      })
    }
    p.munmap(ufence)
    allocs.push({ buf, base, bo, values })
  }
  const check = (q: { push: (s: StepJson) => void }, buf: Buf, base: number, values: ReadonlyArray<number>, from: number, step: number, barrier?: string) => {
    for (let i = from; i < values.length; i += step) {
      q.push({ op: "expect-dword", buf: buf.as, offset: base + i * call.stride + BATCH_DATA.data, value: values[i]! })
      if (barrier !== undefined) q.push({ op: "barrier", name: `${barrier}-${i}` })
    }
  }
  allocs.forEach(({ buf, base, bo, values }, a) => {
    if (f("CPU_FAULT_THREADS")) {
      // check_all_pages_threads: 8 threads, each a slice (or, SAME_PAGE, every page with a barrier after each)
      p.push({ op: "barrier", name: `go${a}` })
      checkers.forEach((q, k) => {
        q.push({ op: "barrier", name: `go${a}` })
        if (f("CPU_FAULT_SAME_PAGE")) check(q, buf, base, values, 0, 1, `page${a}`)
        else check(q, buf, base, values, k, checkers.length)
        q.push({ op: "barrier", name: `joined${a}` })
      })
      p.push({ op: "barrier", name: `joined${a}` })
    } else if (f("CPU_FAULT_PROCESS")) {
      // check_all_pages_process: 8 children forked, then signalled (go); each checks a slice (or, SAME_PAGE,
      // every page with the shared barrier after each); igt_waitchildren
      const children = Array.from({ length: NUM_CHECK_THREADS }, (_, k) => {
        const steps: Array<StepJson> = [{ op: "barrier", name: `go${a}` }]
        if (f("CPU_FAULT_SAME_PAGE")) check(steps, buf, base, values, 0, 1, `page${a}`)
        else check(steps, buf, base, values, k, NUM_CHECK_THREADS)
        return p.fork(steps)
      })
      p.push({ op: "barrier", name: `go${a}` })
      for (const child of children) p.push({ op: "wait", process: child })
    } else check(p, buf, base, values, 0, 1)
    p.munmap(buf) // free, or __aligned_free of the reservation (the BO mapping in it goes too)
    if (bo !== undefined) p.push({ op: "bo-destroy", bo }) // gem_close
  })
}

/** `NUM_CHECK_THREADS` of `many_allocs`. */
const NUM_CHECK_THREADS = 8

/**
 * Options of {@link build}: the VRAM the scenario's machine has (`evict-*`
 * allocate 9/8 of the visible VRAM; default 256 MiB, the runner's default).
 *
 * @category models
 */
export interface BuildOptions {
  readonly vramBytes?: number
}


type Builder = (t: Subtest, o: Required<BuildOptions>) => ReadonlyArray<Program> | string

const program = (t: Subtest, prefix = "", world: World = { forks: [] }) => new Program(new Space(), prng(t.name), prefix, world)

/**
 * One builder per function of the source that a subtest's body calls, by
 * `Call["fn"]`: it returns the main process's threads (their `fork` steps'
 * children in their shared `world`), or why it cannot (skipped).
 *
 * @category constants
 */
export const BUILDERS: Record<Call["fn"], Builder> = {
  test_exec: (t) => {
    if (t.call.fn !== "test_exec") return "not a test_exec call"
    const p = program(t)
    for (let e = 0; e < DEVICE.engines; e++) testExec(p, t, t.call)
    return [p]
  },
  threads: (t) => {
    if (t.call.fn !== "threads") return "not a threads call"
    const call = t.call
    const space = new Space()
    const rand = prng(t.name)
    const world: World = { forks: [] }
    const threads = Array.from({ length: DEVICE.engines }, (_, i) => new Program(space, rand, `t${i}-`, world))
    // shared_vm: one VM bound once for all threads; else each thread's test_exec creates (and binds) its own
    if (!call.sharedVm) threads.forEach((th, i) => th.vm = `vm${i}`)
    let alloc: Buf | undefined
    if (t.flags.includes("SHARED_ALLOC")) {
      // alloc = aligned_alloc(SZ_2M, xe_bb_size(sizeof(test_exec_data) * stride * n_execs * n_engines)); memset 5
      const size = bbSize(EXEC_DATA.size * call.stride * call.nExecs * DEVICE.engines)
      alloc = threads[0]!.mmap("shared", size, SZ_2M)
      threads[0]!.memset(alloc.as, 0, size)
      for (const th of threads.slice(1)) th.push({ op: "barrier", name: "alloc" })
      if (threads.length > 1) threads[0]!.push({ op: "barrier", name: "alloc" })
    }
    const flags = t.flags.filter((f) => f !== "SHARED_ALLOC")
    threads.forEach((th, i) => testExec(th, { ...t, flags }, call, alloc === undefined ? undefined : { buf: alloc, base: i * EXEC_DATA.size }))
    if (alloc !== undefined) threads[0]!.push({ op: "munmap", buf: alloc.as })
    // shared_vm with MMAP: after the joins, unbind_system_allocator() (retried while EBUSY) must succeed
    if (call.sharedVm && t.flags.includes("MMAP")) threads[0]!.push({ op: "vm-unbind" })
    return threads
  },
  processes: (t) => {
    if (t.call.fn !== "processes") return "not a processes call"
    // igt_fork one child per engine; each opens the device (its own VM) and runs test_exec; igt_waitchildren
    const call = t.call
    const main = program(t)
    const children = Array.from({ length: DEVICE.engines }, () => {
      const child = program(t, "", main.world)
      testExec(child, t, call)
      return main.fork(child.steps)
    })
    for (const c of children) main.push({ op: "wait", process: c })
    return [main]
  },
  partial: (t) => {
    const p = program(t)
    for (let e = 0; e < DEVICE.engines; e++) partial(p, t)
    return [p]
  },
  many_allocs: (t, o) => {
    if (t.call.fn !== "many_allocs") return "not a many_allocs call"
    const p = program(t)
    const engines = t.call.firstEngineOnly ? 1 : DEVICE.engines
    const checkers = t.flags.includes("CPU_FAULT_THREADS") ? Array.from({ length: NUM_CHECK_THREADS }, (_, k) => program(t, `c${k}-`, p.world)) : []
    for (let e = 0; e < engines; e++) manyAllocs(p, t, t.call, o.vramBytes, checkers)
    return [p, ...checkers]
  },
  processes_evict: (t, o) => {
    if (t.call.fn !== "processes_evict") return "not a processes_evict call"
    // igt_fork one child per engine: many_allocs(visible VRAM / engines of its GT, alloc_size, stride) in its own VM;
    // the children meet at a barrier of n_engine before checking (one engine here: no wait); igt_waitchildren
    const call = t.call
    const main = program(t)
    const children = Array.from({ length: DEVICE.engines }, () => {
      const child = program(t, "", main.world)
      manyAllocs(child, t, { fn: "many_allocs", totalAlloc: Math.floor(o.vramBytes / DEVICE.engines), allocSize: call.allocSize, stride: call.stride, firstEngineOnly: true }, o.vramBytes, [])
      return main.fork(child.steps)
    })
    for (const c of children) main.push({ op: "wait", process: c })
    return [main]
  },
  test_compute: () => "needs a compute kernel"
}

/**
 * Builds the scenario of one subtest (see the module doc), or says it is
 * vacuous (IGT returns at once) or skipped (what the model lacks).
 *
 * @category functions
 */
export const build = (t: Subtest, options: BuildOptions = {}): Built => {
  if (t.vacuous !== undefined) return { kind: "vacuous", reason: t.vacuous }
  const lack = skipReason(t)
  if (lack !== undefined) return { kind: "skipped", reason: lack }
  const o = { vramBytes: options.vramBytes ?? 256 * 2 ** 20 }
  const programs = BUILDERS[t.call.fn](t, o)
  if (typeof programs === "string") return { kind: "skipped", reason: programs }
  const vms = programs.flatMap((p) => p.vm === undefined ? [] : [p.vm])
  const threads: ReadonlyArray<ThreadJson> = programs.map((p) => ({ ...(p.vm === undefined ? {} : { vm: p.vm }), steps: p.steps }))
  const forks = programs[0]?.world.forks ?? []
  const file: ScenarioJson = {
    name: `igt-${t.name}`,
    description: `IGT ${IGT_SOURCE.path}@${IGT_SOURCE.commit.slice(0, 7)} subtest ${t.name}, generated (src/igt/Generate.ts)`,
    ...(forks.length === 0
      ? { ...(vms.length === 0 ? {} : { vms }), threads }
      : { processes: [{ name: "main", ...(vms.length === 0 ? {} : { vms }), threads }, ...forks.map((c) => ({ name: c.name, steps: c.steps }))] })
  }
  const exit = decodeScenario({ ...file, machine: { vramBytes: o.vramBytes } }, `igt:${t.name}`)
  if (Exit.isFailure(exit)) return { kind: "skipped", reason: `the generated scenario does not decode: ${String(exit.cause)}` }
  return { kind: "scenario", scenario: exit.value, file }
}
