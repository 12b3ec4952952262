/**
 * The checks of a scenario file that need no machine and look across steps
 * (`scenarios.md`), run after the shape decoded: exactly one of `steps` /
 * `threads`; every `buf` names a buffer some `mmap` / `mremap` creates with
 * `as` (earlier in the same thread, or in any other thread), buffer names not
 * created by two threads, offsets and lengths inside buffers of statically
 * known length, hugetlb lengths and atomic offsets aligned; and the `svm`
 * block against the `GpuSvmConfig` rules (kernel-semantics §2). Each returns
 * its problems with their paths from the file root.
 *
 * @since 0.1.0
 */
import { ADDRESS_LIMIT, HUGE_PAGE_SIZE, PAGE_SIZE } from "../Address.ts"
import * as GpuSvmConfig from "../GpuSvmConfig.ts"
import type { ScenarioFileType } from "./Blocks.ts"
import { formatPath, type PathIssue } from "./Issues.ts"
import { formatHex, formatSize } from "./Numbers.ts"
import type { NestedStep, Step } from "./Step.ts"

/**
 * A file gives exactly one of `steps` (one thread) and `threads`.
 *
 * @category checks
 * @since 0.1.0
 */
export const exactlyOneOfStepsThreads = (f: ScenarioFileType): true | PathIssue => {
  const given = (["steps", "threads", "processes"] as const).filter((k) => f[k] !== undefined)
  if (given.length > 1) {
    return { path: [given[1]!], issue: `give either "steps" (one thread), "threads" or "processes", not ${given.map((g) => `"${g}"`).join(" and ")}` }
  }
  if (given.length === 0) return { path: ["steps"], issue: `missing key: give "steps" (one thread) or "threads" (or "processes")` }
  if (f.processes !== undefined && f.vms !== undefined) {
    return { path: ["vms"], issue: `with "processes", give each process its own "vms"` }
  }
  for (const [i, p] of (f.processes ?? []).entries()) {
    if (p.steps !== undefined && p.threads !== undefined) {
      return { path: ["processes", i, "threads"], issue: `give either "steps" (one thread) or "threads", not both` }
    }
  }
  return true
}

/** The process of the `steps` / `threads` forms (and the name `fork` children of it see). */
const DEFAULT_PROCESS = "p0"
/** The VM a process has when it lists none. */
const DEFAULT_VM = "v0"

/** The processes of a file: name, VMs, and the threads with their paths. */
const processesOf = (f: ScenarioFileType) =>
  f.processes !== undefined
    ? f.processes.map((p, i) => ({
      name: p.name,
      vms: p.vms ?? [DEFAULT_VM],
      at: ["processes", i] as ReadonlyArray<PropertyKey>,
      threads: p.threads !== undefined
        ? p.threads.map((t, j) => ({ steps: t.steps, vm: t.vm, at: ["processes", i, "threads", j] as ReadonlyArray<PropertyKey> }))
        : [{ steps: p.steps ?? [], vm: undefined, at: ["processes", i] as ReadonlyArray<PropertyKey> }]
    }))
    : [{
      name: DEFAULT_PROCESS,
      vms: f.vms ?? [DEFAULT_VM],
      at: [] as ReadonlyArray<PropertyKey>,
      threads: f.threads !== undefined
        ? f.threads.map((t, j) => ({ steps: t.steps, vm: t.vm, at: ["threads", j] as ReadonlyArray<PropertyKey> }))
        : [{ steps: f.steps ?? [], vm: undefined, at: [] as ReadonlyArray<PropertyKey> }]
    }]

/**
 * The process checks (kernel-semantics §11.17): process names distinct; every
 * `fork.as` names a listed process other than the first and its own (in the
 * `steps` / `threads` forms: any new name, a child with no threads), and no
 * process is the child of two forks; every `wait.process` names a process of
 * the scenario other than the waiting thread's; every `vm` (of a thread or a
 * GPU step) names a VM of its process.
 *
 * @category checks
 * @since 0.4.0
 */
export const processIssues = (f: ScenarioFileType): Array<PathIssue> => {
  const issues: Array<PathIssue> = []
  const procs = processesOf(f)
  const listed = new Set<string>()
  procs.forEach((p) => {
    if (listed.has(p.name)) issues.push({ path: [...p.at, "name"], issue: `process ${JSON.stringify(p.name)} is listed twice` })
    listed.add(p.name)
  })
  const forkedBy = new Map<string, string>()
  const known = new Set<string>(listed)
  for (const p of procs) for (const t of p.threads) for (const s of t.steps) if (s.op === "fork") known.add(s.as)
  for (const p of procs) {
    // kernel-semantics §11.17: buffer objects are named per process by bo-create
    const bos = new Set(p.threads.flatMap((t) => t.steps.flatMap((s) => (s.op === "bo-create" ? [s.as] : []))))
    for (const t of p.threads) {
      t.steps.forEach((s, i) => {
        const inner = s.op === "expect-error" ? s.step : s
        if ("bo" in inner && !bos.has(inner.bo)) {
          issues.push({ path: [...t.at, "steps", i, ...(s.op === "expect-error" ? ["step"] : []), "bo"], issue: `unknown buffer object ${JSON.stringify(inner.bo)}: no bo-create in process ${JSON.stringify(p.name)} creates it with "as"` })
        }
      })
      if (t.vm !== undefined && !p.vms.includes(t.vm)) {
        issues.push({ path: [...t.at, "vm"], issue: `unknown VM ${JSON.stringify(t.vm)} of process ${JSON.stringify(p.name)} (its VMs: ${p.vms.join(", ")})` })
      }
      t.steps.forEach((s, i) => {
        const here: ReadonlyArray<PropertyKey> = [...t.at, "steps", i]
        const inner = s.op === "expect-error" ? s.step : s
        if ("vm" in inner && inner.vm !== undefined && !p.vms.includes(inner.vm)) {
          issues.push({ path: [...here, ...(s.op === "expect-error" ? ["step"] : []), "vm"], issue: `unknown VM ${JSON.stringify(inner.vm)} of process ${JSON.stringify(p.name)} (its VMs: ${p.vms.join(", ")})` })
        }
        if (s.op === "fork") {
          const first = forkedBy.get(s.as)
          if (s.as === p.name || (f.processes !== undefined && s.as === procs[0]!.name)) {
            issues.push({ path: [...here, "as"], issue: `process ${JSON.stringify(s.as)} cannot be the child of a fork: it starts with the run` })
          } else if (f.processes !== undefined && !listed.has(s.as)) {
            issues.push({ path: [...here, "as"], issue: `unknown process ${JSON.stringify(s.as)}: list the child under "processes" (with no steps if it does nothing)` })
          } else if (first !== undefined) {
            issues.push({ path: [...here, "as"], issue: `process ${JSON.stringify(s.as)} is already the child of the fork at ${first}` })
          } else if (f.processes === undefined && s.as === DEFAULT_PROCESS) {
            issues.push({ path: [...here, "as"], issue: `"${DEFAULT_PROCESS}" is the scenario's own process; give the child another name` })
          }
          forkedBy.set(s.as, formatPath(here))
        }
        if (s.op === "wait") {
          if (s.process === p.name) issues.push({ path: [...here, "process"], issue: `a process cannot wait for itself` })
          else if (!known.has(s.process)) issues.push({ path: [...here, "process"], issue: `unknown process ${JSON.stringify(s.process)}` })
        }
      })
    }
  }
  return issues
}

/**
 * The error tags an `expect-error` step may name: the `_tag` of every error
 * class of `domain/Errors.ts` (the errno errors, `InvalidConfig`,
 * `GpuFaultError`, whose last cause's tag also matches) and of the scenario
 * runner's own step errors (`UnknownBuffer`, `BarrierDeadlock`). The domain
 * does not import the runner, so the list is kept here;
 * `test/domain/Scenario.test.ts` holds it equal to the real classes' tags.
 *
 * @category constants
 * @since 0.2.0
 */
export const EXPECTABLE_ERROR_TAGS: ReadonlyArray<string> = [
  "InvalidArgument",
  "VmaNotFound",
  "PermissionDenied",
  "BadAddress",
  "MixedPages",
  "Again",
  "OutOfMemory",
  "Busy",
  "TimedOut",
  "AccessDenied",
  "InvalidConfig",
  "GpuFaultError",
  "UnknownBuffer",
  "BarrierDeadlock"
]

/**
 * Every `expect-error` names a known error tag ({@link EXPECTABLE_ERROR_TAGS}):
 * an unknown one could never match, so the file is rejected rather than
 * failing at run time.
 *
 * @category checks
 * @since 0.2.0
 */
export const errorTagIssues = (f: ScenarioFileType): Array<PathIssue> =>
  threadsOf(f).flatMap(({ steps, at }) =>
    steps.flatMap((s, i): Array<PathIssue> =>
      s.op === "expect-error" && !EXPECTABLE_ERROR_TAGS.includes(s.tag)
        ? [{ path: [...at, i, "tag"], issue: `unknown error tag ${JSON.stringify(s.tag)} (known: ${EXPECTABLE_ERROR_TAGS.join(", ")})` }]
        : []
    )
  )

/**
 * Within one thread, a step that creates a buffer name (`mmap … as`, `mremap …
 * as`) must not reuse the name of a buffer still live there: the second
 * mapping would silently hide the first. A name is live from the step that
 * creates it until a whole-buffer `munmap` of it, or an `mremap` that moves it
 * to another name (without `dontUnmap`). The issue names both steps.
 *
 * @category checks
 * @since 0.2.0
 */
export const liveNameIssues = (f: ScenarioFileType): Array<PathIssue> =>
  threadsOf(f).flatMap(({ steps, at }) => {
    const live = new Map<string, string>() // name → the step that created it
    const issues: Array<PathIssue> = []
    steps.forEach((s, i) => {
      const here = formatPath([...at, i])
      const create = (name: string) => {
        const first = live.get(name)
        if (first !== undefined) {
          issues.push({
            path: [...at, i, "as"],
            issue: `buffer ${JSON.stringify(name)} is still live: ${first} created it and ${here} (${s.op}) would create it again; give the new buffer its own name`
          })
        }
        live.set(name, `${here} (${s.op})`)
      }
      if (s.op === "mmap") create(s.as)
      else if (s.op === "mremap" && s.as !== undefined && s.as !== s.buf) {
        if (s.dontUnmap !== true) live.delete(s.buf)
        create(s.as)
      } else if (s.op === "munmap" && (s.offset ?? 0) === 0 && s.length === undefined) live.delete(s.buf)
    })
    return issues
  })

/** The threads of a file with the path of each thread's `steps`. */
const threadsOf = (f: ScenarioFileType): ReadonlyArray<{ readonly steps: ReadonlyArray<Step>; readonly at: ReadonlyArray<PropertyKey> }> =>
  processesOf(f).flatMap((p) => p.threads.map((t) => ({ steps: t.steps, at: [...t.at, "steps"] })))

/**
 * The buffers a `gpu-exec` names (its batch, stores and fence, kernel-free
 * IGT exec, issue #17 part 3) are created by some `mmap` / `mremap … as` of
 * the file: an unknown name could never resolve. Offsets are checked when the
 * step runs (the batch holds absolute addresses, like IGT's).
 *
 * @category checks
 * @since 0.4.0
 */
export const execTargetIssues = (f: ScenarioFileType): Array<PathIssue> => {
  const threads = threadsOf(f)
  const created = new Set<string>()
  for (const { steps } of threads) {
    for (const s of steps) {
      if (s.op === "mmap") created.add(s.as)
      else if (s.op === "mremap") created.add(s.as ?? s.buf)
    }
  }
  return threads.flatMap(({ steps, at }) =>
    steps.flatMap((s, i): Array<PathIssue> => {
      if (s.op !== "gpu-exec") return []
      const targets: Array<[ReadonlyArray<PropertyKey>, string]> = [[["batch", "buf"], s.batch.buf]]
      const stores = Array.isArray(s.store) ? s.store : [s.store]
      stores.forEach((t, j) => targets.push([Array.isArray(s.store) ? ["store", j, "buf"] : ["store", "buf"], t.buf]))
      if (s.fence !== undefined) targets.push([["fence", "buf"], s.fence.buf])
      return targets.filter(([, b]) => !created.has(b)).map(([path, b]) => ({
        path: [...at, i, ...path],
        issue: `unknown buffer ${JSON.stringify(b)}: no mmap or mremap creates it with "as"`
      }))
    })
  )
}

/** The buffer a step reads or changes, if any. */
const bufOf = (s: Step | NestedStep): string | undefined => ("buf" in s ? s.buf : undefined)

/**
 * The buffer-reference and bounds checks: every `buf` names a buffer created
 * by `as`, and offsets/lengths stay inside buffers of statically known length.
 *
 * @category checks
 * @since 0.1.0
 */
export const bufferIssues = (f: ScenarioFileType): Array<PathIssue> => {
  // kernel-semantics §11.17: each process has its own buffer names; a fork child starts with its parent's
  const procs = processesOf(f)
  const parentOf = new Map<string, string>()
  for (const p of procs) for (const t of p.threads) for (const st of t.steps) if (st.op === "fork") parentOf.set(st.as, p.name)
  const sizesIn = (name: string): Map<string, Set<number>> => {
    const out = new Map<string, Set<number>>()
    for (const t of procs.find((p) => p.name === name)?.threads ?? []) {
      for (const st of t.steps) {
        const add = (n: string, size: number) => {
          let set = out.get(n)
          if (set === undefined) out.set(n, set = new Set())
          set.add(size)
        }
        if (st.op === "mmap") add(st.as, st.length)
        else if (st.op === "mremap") add(st.as ?? st.buf, st.newLength)
      }
    }
    return out
  }
  const inheritedBy = (name: string): Map<string, Set<number>> => {
    const out = new Map<string, Set<number>>()
    const seen = new Set<string>([name])
    for (let p = parentOf.get(name); p !== undefined && !seen.has(p); p = parentOf.get(p)) {
      seen.add(p)
      for (const [n, set] of sizesIn(p)) out.set(n, new Set([...(out.get(n) ?? []), ...set]))
    }
    return out
  }
  return procs.flatMap((p) => bufferIssuesOf(p.threads.map((t) => ({ steps: t.steps, at: [...t.at, "steps"] })), inheritedBy(p.name)))
}

/** The buffer checks of one process's threads; `inherited`: the names (and sizes) a fork child gets from its parents. */
const bufferIssuesOf = (
  threads: ReadonlyArray<{ readonly steps: ReadonlyArray<Step>; readonly at: ReadonlyArray<PropertyKey> }>,
  inherited: ReadonlyMap<string, ReadonlySet<number>>
): Array<PathIssue> => {
  // Every size a name is given anywhere (mmap, mremap as, mremap resize), and which threads create it.
  const sizes = new Map<string, Set<number>>()
  const creators = new Map<string, Set<number>>()
  const note = (name: string, size: number, thread: number | undefined) => {
    let set = sizes.get(name)
    if (set === undefined) sizes.set(name, set = new Set())
    set.add(size)
    if (thread !== undefined) {
      let cs = creators.get(name)
      if (cs === undefined) creators.set(name, cs = new Set())
      cs.add(thread)
    }
  }
  threads.forEach(({ steps }, t) => {
    for (const s of steps) {
      if (s.op === "mmap") note(s.as, s.length, t)
      else if (s.op === "mremap") note(s.as ?? s.buf, s.newLength, s.as === undefined ? undefined : t)
    }
  })

  const issues: Array<PathIssue> = []
  const reported = new Set<string>()
  threads.forEach(({ steps, at }, t) => {
    const known = new Map<string, number>() // created earlier in this thread: its current length
    const createdLaterHere = (name: string, from: number) =>
      steps.some((s, j) => j >= from && (s.op === "mmap" ? s.as === name : s.op === "mremap" && s.as === name))

    /** Checks one reference; returns the buffer's static length when known. */
    const resolve = (name: string, path: ReadonlyArray<PropertyKey>, index: number): number | undefined => {
      const local = known.get(name)
      if (local !== undefined) return local
      const others = [...(creators.get(name) ?? [])].filter((c) => c !== t)
      if (others.length > 0) {
        const all = sizes.get(name)!
        return all.size === 1 ? [...all][0] : undefined
      }
      const inh = inherited.get(name)
      if (inh !== undefined) return inh.size === 1 ? [...inh][0] : undefined
      if (!reported.has(name)) {
        reported.add(name)
        issues.push({
          path,
          issue: createdLaterHere(name, index)
            ? `buffer ${JSON.stringify(name)} is used before the step that creates it`
            : `unknown buffer ${JSON.stringify(name)}: no mmap or mremap creates it with "as"`
        })
      }
      return undefined
    }

    const bounds = (s: Step | NestedStep, size: number, path: ReadonlyArray<PropertyKey>) => {
      if (!("buf" in s)) return
      const name = JSON.stringify(s.buf)
      const offset = "offset" in s && s.offset !== undefined ? s.offset : 0
      if (offset >= size) {
        issues.push({
          path: [...path, "offset"],
          issue: `offset past the buffer ${name}: offset ${formatHex(offset)}, buffer length ${formatHex(size)}`
        })
        return
      }
      if (s.op === "gpu-atomic-inc" && offset + 4 > size) {
        issues.push({
          path: [...path, "offset"],
          issue: `offset past the buffer ${name}: a 4-byte atomic at ${formatHex(offset)} ends past the buffer length ${formatHex(size)}`
        })
        return
      }
      if ("length" in s && s.length !== undefined && offset + s.length > size) {
        issues.push({
          path: [...path, "length"],
          issue: `length past the buffer ${name}: offset ${formatHex(offset)} + length ${formatHex(s.length)} > buffer length ${formatHex(size)}`
        })
      }
    }

    steps.forEach((s, i) => {
      const path = [...at, i]
      if (s.op === "mmap" && s.kind === "hugetlb" && s.length % HUGE_PAGE_SIZE !== 0) {
        issues.push({ path: [...path, "length"], issue: `a hugetlb mapping's length must be a multiple of 2 MiB, got ${formatHex(s.length)}` })
      }
      if (s.op === "gpu-atomic-inc" && s.offset % 4 !== 0) {
        issues.push({ path: [...path, "offset"], issue: `a 32-bit atomic needs a 4-byte aligned offset, got ${formatHex(s.offset)}` })
      }
      if ((s.op === "mmap" || (s.op === "mremap" && s.as !== undefined)) && !known.has(s.op === "mmap" ? s.as : s.as!)) {
        const name = s.op === "mmap" ? s.as : s.as!
        const first = [...(creators.get(name) ?? [])].sort((a, b) => a - b)[0]
        if (first !== undefined && first < t && !reported.has(`created:${name}`)) {
          reported.add(`created:${name}`)
          issues.push({
            path: [...path, "as"],
            issue: `buffer ${JSON.stringify(name)} is also created by ${threads.length > 1 ? `threads[${first}]` : "another thread"}: buffer names are shared by all threads, give each thread's buffers their own names`
          })
        }
      }
      if (s.op === "expect-error") {
        // The inner step is expected to fail: its buffer must exist, but it may
        // deliberately reach past the end, and an `as` in it creates nothing.
        const inner = bufOf(s.step)
        if (inner !== undefined) resolve(inner, [...path, "step", "buf"], i)
        return
      }
      const name = bufOf(s)
      if (name !== undefined) {
        const size = resolve(name, [...path, "buf"], i)
        if (size !== undefined) bounds(s, size, path)
      }
      if (s.op === "mmap") known.set(s.as, s.length)
      else if (s.op === "mremap") known.set(s.as ?? s.buf, s.newLength)
    })
  })
  return issues
}

/**
 * The `svm` block against the `GpuSvmConfig` rules of kernel-semantics §2.
 *
 * @category checks
 * @since 0.1.0
 */
export const svmIssues = (f: ScenarioFileType): Array<PathIssue> => {
  const svm = f.svm
  if (svm === undefined) return []
  if (svm.gpuvaEnd !== undefined && svm.gpuvaEnd <= (svm.gpuvaStart ?? 0)) {
    return [{ path: ["svm", "gpuvaEnd"], issue: `expected an end above gpuvaStart ${formatHex(svm.gpuvaStart ?? 0)}, got ${formatHex(svm.gpuvaEnd)}` }]
  }
  const start = svm.gpuvaStart ?? GpuSvmConfig.DEFAULTS.mmStart
  const end = svm.gpuvaEnd ?? ADDRESS_LIMIT
  const v = GpuSvmConfig.violation({
    name: "scenario",
    mmStart: start,
    mmRange: end - start,
    notifierSize: svm.notifierSize ?? GpuSvmConfig.DEFAULTS.notifierSize,
    chunkSizes: svm.chunkSizes ?? GpuSvmConfig.DEFAULTS.chunkSizes,
    devicePrivateOwner: undefined,
    hmmTimeoutMs: svm.hmmTimeoutMs ?? GpuSvmConfig.DEFAULTS.hmmTimeoutMs,
    kernel: svm.kernel ?? GpuSvmConfig.DEFAULTS.kernel
  })
  if (v === undefined) return []
  const key = v.field === "mmStart" ? "gpuvaStart" : v.field === "mmRange" ? "gpuvaEnd" : v.field
  const given = (svm as Record<string, unknown>)[key] !== undefined
  return [{
    path: given ? ["svm", key] : ["svm"],
    issue: given ? v.reason : `${key} (default): ${v.reason}`
  }]
}

/**
 * The most bytes the buffers a scenario writes may hold together, and the most
 * one access step may move: the simulated machine holds real bytes (the
 * project's machines have 24 GiB), so a scenario past this is refused before
 * anything runs (exit 2) rather than exhausting the host (issue #18). Steps
 * stream their windows in pieces, so the bound is on memory, not on one call.
 *
 * @category constants
 * @since 0.2.0
 */
export const MEMORY_LIMIT = 16 * 2 ** 30

const ACCESS_OPS = new Set(["cpu-write", "gpu-write", "cpu-read", "gpu-read", "prefetch", "make-exclusive"])
// make-exclusive faults its pages in writable (§11.17), so it allocates them like a write
const WRITE_OPS = new Set(["cpu-write", "gpu-write", "gpu-atomic-inc", "make-exclusive"])

/**
 * The memory checks: no access step moves more than {@link MEMORY_LIMIT}, and
 * the buffers the scenario writes (each counted once, at its largest) hold at
 * most that much together; the message names the step and the figure.
 *
 * @category checks
 * @since 0.2.0
 */
export const memoryIssues = (f: ScenarioFileType): Array<PathIssue> => {
  const issues: Array<PathIssue> = []
  const written = new Map<string, number>()
  let total = 0
  let reportedTotal = false
  for (const { steps, at } of threadsOf(f)) {
    const known = new Map<string, number>()
    steps.forEach((s, i) => {
      const path = [...at, i]
      if (s.op === "mmap") known.set(s.as, s.length)
      else if (s.op === "mremap") known.set(s.as ?? s.buf, s.newLength)
      const name = bufOf(s)
      if (name === undefined) return
      const size = known.get(name)
      if (size === undefined) return
      if (ACCESS_OPS.has(s.op)) {
        const offset = "offset" in s && s.offset !== undefined ? s.offset : 0
        const length = "length" in s && s.length !== undefined ? s.length : Math.max(size - offset, 0)
        if (length > MEMORY_LIMIT) {
          issues.push({ path, issue: `access of ${formatSize(length)} exceeds the ${formatSize(MEMORY_LIMIT)} a scenario may move on the simulated machine (it holds real bytes)` })
          reportedTotal = true // one problem per step: this one says it
        }
      }
      if (WRITE_OPS.has(s.op) && (written.get(name) ?? 0) < size) {
        total += size - (written.get(name) ?? 0)
        written.set(name, size)
        if (total > MEMORY_LIMIT && !reportedTotal) {
          reportedTotal = true
          issues.push({ path, issue: `the buffers written so far hold ${formatSize(total)}, more than the ${formatSize(MEMORY_LIMIT)} the simulated machine may hold` })
        }
      }
    })
  }
  return issues
}

/**
 * A kernel page-move step (`kernel-reclaim` … `kernel-split-thp`, kernel-semantics §11.17) acts on
 * whole pages: its `offset` must be page aligned (its `length` is a page multiple by its Schema).
 *
 * @category checks
 * @since 0.3.0
 */
export const kernelStepIssues = (f: ScenarioFileType): Array<PathIssue> =>
  threadsOf(f).flatMap(({ steps, at }) =>
    steps.flatMap((s0, i): Array<PathIssue> => {
      const s = s0.op === "expect-error" ? s0.step : s0
      const inner = s0.op === "expect-error" ? ["step"] : []
      return s.op.startsWith("kernel-") && "offset" in s && s.offset !== undefined && s.offset % PAGE_SIZE !== 0
        ? [{ path: [...at, i, ...inner, "offset"], issue: `a kernel page move acts on whole pages: offset must be a multiple of 4 KiB, got ${formatHex(s.offset)}` }]
        : []
    })
  )
