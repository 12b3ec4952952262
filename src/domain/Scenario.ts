/**
 * The scenario file format of `scenarios.md` (a public contract): its Schema,
 * the decoded types, and a pure decoder whose errors name the JSON path.
 *
 * - Numbers may be JSON numbers or strings: decimal `"4096"`, hex `"0x1000"`,
 *   binary multiples `"64K"` / `"2M"` / `"1G"` / `"1T"`. They decode to safe
 *   non-negative integers; fractions (`"2.5K"`), negatives and values `>= 2^53`
 *   are rejected.
 * - Unknown keys are rejected (a typo must not be silently ignored); an unknown
 *   `op` is reported at `….op` with its name.
 * - Checks that need no machine run after the shape: mmap/munmap/mprotect/
 *   madvise/mremap lengths are page multiples, every `buf` names a buffer some
 *   `mmap` / `mremap` creates with `as` (earlier in the same thread, or in any
 *   other thread), offsets and lengths stay inside buffers of statically known
 *   length, and the `svm` block obeys the `GpuSvmConfig` rules.
 * - A top-level `steps` is normalised to `threads: [{ steps }]`, and
 *   `policy.migrate` defaults to `"xe"`.
 *
 * Every error is one line `FILE: PATH: MESSAGE`, the path written with dotted
 * keys and `[index]`, e.g. `steps[3].length: expected a positive integer, got -1`.
 *
 * @since 0.1.0
 */
import { Effect, Exit, Result, Schema, SchemaIssue, SchemaTransformation } from "effect"
import type { SchemaAST } from "effect"
import { ADDRESS_LIMIT, HUGE_PAGE_SIZE, PAGE_SIZE } from "./Address.ts"
import * as GpuSvmConfig from "./GpuSvmConfig.ts"

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/**
 * The binary multiples a number string may end in: `K` = 2^10 … `T` = 2^40.
 *
 * @category models
 * @since 0.1.0
 */
export const BINARY_UNITS = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 } as const

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const HEX = /^0x([0-9a-f]+)$/i
const DECIMAL = /^([0-9]+)([KMGT])?$/
const FRACTION = /^-?[0-9]*\.[0-9]+[KMGT]?$|^-?[0-9]+\.[0-9]*[KMGT]?$/
const NEGATIVE = /^-(0x[0-9a-f]+|[0-9]+[KMGT]?)$/i

/**
 * Why a number could not be read: not a number at all, a fraction, below zero,
 * or not below 2^53.
 *
 * @category models
 * @since 0.1.0
 */
export type IntLikeProblem = "not-a-number" | "not-an-integer" | "negative" | "too-large"

/**
 * Reads a scenario number: a JSON number, or a string `"4096"`, `"0x1000"`,
 * `"64K"`, `"2M"`, `"1G"`, `"1T"` (binary multiples, upper case). Succeeds with
 * a non-negative safe integer (`< 2^53`).
 *
 * @category parsing
 * @since 0.1.0
 */
export const parseIntLike = (input: number | string): Result.Result<number, IntLikeProblem> => {
  if (typeof input === "number") {
    if (!Number.isFinite(input)) return Result.fail("not-a-number")
    if (!Number.isInteger(input)) return Result.fail("not-an-integer")
    if (input < 0) return Result.fail("negative")
    if (!Number.isSafeInteger(input)) return Result.fail("too-large")
    return Result.succeed(input === 0 ? 0 : input) // normalise -0
  }
  const hex = HEX.exec(input)
  const dec = hex === null ? DECIMAL.exec(input) : null
  let value: bigint
  if (hex !== null) {
    value = BigInt(`0x${hex[1]!}`)
  } else if (dec !== null) {
    const unit = dec[2] as keyof typeof BINARY_UNITS | undefined
    value = BigInt(dec[1]!) * BigInt(unit === undefined ? 1 : BINARY_UNITS[unit])
  } else if (FRACTION.test(input)) {
    return Result.fail("not-an-integer")
  } else if (NEGATIVE.test(input)) {
    return Result.fail(/^-0+[KMGT]?$|^-0x0+$/i.test(input) ? "not-a-number" : "negative")
  } else {
    return Result.fail("not-a-number")
  }
  return value > MAX_SAFE ? Result.fail("too-large") : Result.succeed(Number(value))
}

/**
 * Renders a non-negative safe integer as the scenario hex string `"0x…"`.
 *
 * @category formatting
 * @since 0.1.0
 */
export const formatHex = (n: number): string => `0x${n.toString(16)}`

/**
 * Renders a non-negative safe integer with the largest binary unit that divides
 * it exactly (`2097152` → `"2M"`, `65536` → `"64K"`, `4095` → `"4095"`, `0` → `"0"`).
 *
 * @category formatting
 * @since 0.1.0
 */
export const formatSize = (n: number): string => {
  if (n === 0) return "0"
  for (const unit of ["T", "G", "M", "K"] as const) {
    const m = BINARY_UNITS[unit]
    if (n % m === 0) return `${n / m}${unit}`
  }
  return `${n}`
}

const show = (u: unknown): string => {
  if (typeof u === "string") return JSON.stringify(u)
  if (typeof u === "number" || typeof u === "boolean" || u === null) return String(u)
  if (Array.isArray(u)) return "an array"
  if (typeof u === "object") return "an object"
  return String(u)
}

const NUMBER_FORMS = `a JSON number or a string like "4096", "0x1000", "64K", "2M"`

/** The flavours of integer fields: each knows its bounds and its message. */
interface IntSpec {
  /** e.g. "a positive integer". */
  readonly expected: string
  readonly min: number
  readonly max: number
}

const intFailure = (spec: IntSpec, input: unknown, problem: IntLikeProblem | "below" | "above"): string => {
  switch (problem) {
    case "not-a-number":
      return `expected ${spec.expected} (${NUMBER_FORMS}), got ${show(input)}`
    case "too-large":
      return `expected ${spec.expected} below 2^53, got ${show(input)}`
    default:
      return `expected ${spec.expected}, got ${show(input)}`
  }
}

const intCodec = (spec: IntSpec) =>
  Schema.Union([Schema.Number, Schema.String]).annotate({ expected: `${spec.expected} (${NUMBER_FORMS})` }).pipe(
    Schema.decodeTo(
      Schema.Number,
      SchemaTransformation.transformEffect<number, number | string>({
        decode: (input, options) => {
          const r = parseIntLike(input)
          const problem = Result.isFailure(r)
            ? r.failure
            : r.success < spec.min
            ? "below"
            : r.success > spec.max
            ? "above"
            : undefined
          return problem === undefined && Result.isSuccess(r)
            ? Effect.succeed(r.success)
            : Effect.fail(new SchemaIssue.InvalidValue({ message: intFailure(spec, input, problem ?? "not-a-number") }, input, options))
        },
        encode: (n: number) => Effect.succeed(n)
      })
    )
  )

/**
 * Schema of a scenario number that is `>= 0` (addresses, offsets, counts).
 * Encoded: `number | string`; decoded: a safe integer.
 *
 * @category schemas
 * @since 0.1.0
 */
export const NonNegativeIntLike = intCodec({ expected: "a non-negative integer", min: 0, max: Number.MAX_SAFE_INTEGER })

/**
 * Schema of a scenario number that is `> 0` (lengths, sizes).
 *
 * @category schemas
 * @since 0.1.0
 */
export const PositiveIntLike = intCodec({ expected: "a positive integer", min: 1, max: Number.MAX_SAFE_INTEGER })

/**
 * Schema of a positive length that is a multiple of the 4 KiB page size (the
 * lengths of `mmap`, `munmap`, `mprotect`, `madvise-dontneed`, `mremap`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const PageLength = PositiveIntLike.check(
  Schema.makeFilter((n: number) =>
    n % PAGE_SIZE === 0 || `expected a multiple of ${PAGE_SIZE} (the page size), got ${n} (${formatHex(n)})`
  )
)

/**
 * Schema of a pattern byte `p` (0–255): byte `i` of the buffer holds `(p + i) % 256`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Pattern = intCodec({ expected: "a pattern from 0 to 255", min: 0, max: 255 })

const isPowerOfTwo = (n: number): boolean => n > 0 && Number.isSafeInteger(n) && 2 ** Math.round(Math.log2(n)) === n

const Alignment = PositiveIntLike.check(
  Schema.makeFilter((n: number) => isPowerOfTwo(n) || `expected a power of two, got ${n}`)
)

/**
 * Schema of a read expectation: a pattern (0–255) or `"zero"` (all bytes zero).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Expect = Schema.Union([Schema.Number, Schema.String]).annotate({ expected: `a pattern from 0 to 255 or "zero"` }).pipe(
  Schema.decodeTo(
    Schema.Union([Schema.Number, Schema.Literal("zero")]),
    SchemaTransformation.transformEffect<number | "zero", number | string>({
      decode: (input, options) => {
        if (input === "zero") return Effect.succeed("zero" as const)
        const r = parseIntLike(input)
        return Result.isSuccess(r) && r.success <= 255
          ? Effect.succeed(r.success)
          : Effect.fail(
            new SchemaIssue.InvalidValue({ message: `expected a pattern from 0 to 255 or "zero", got ${show(input)}` }, input, options)
          )
      },
      encode: (e: number | "zero") => Effect.succeed(e)
    })
  )
)

/**
 * A decoded read expectation.
 *
 * @category models
 * @since 0.1.0
 */
export type Expect = typeof Expect.Type

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

const NonEmpty = (what: string) =>
  Schema.String.check(Schema.makeFilter((s: string) => s.length > 0 || `expected a non-empty ${what}`))

const BufferName = NonEmpty("buffer name")
const optional = Schema.optionalKey

/** `mmap`: a new mapping named `as` (malloc is an anonymous mmap). */
const MmapStep = Schema.Struct({
  op: Schema.Literal("mmap"),
  as: BufferName,
  length: PageLength,
  addr: optional(NonNegativeIntLike),
  fixed: optional(Schema.Boolean),
  align: optional(Alignment),
  kind: optional(Schema.Literals(["anonymous", "file", "hugetlb"])),
  shared: optional(Schema.Boolean),
  prot: optional(Schema.Literals(["rw", "r", "rwx", "none"]))
})

/** `munmap`: unmap all (no `length`) or part of a buffer. */
const MunmapStep = Schema.Struct({
  op: Schema.Literal("munmap"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PageLength)
})

/** `mprotect`: change the protection of all or part of a buffer. */
const MprotectStep = Schema.Struct({
  op: Schema.Literal("mprotect"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PageLength),
  prot: Schema.Literals(["rw", "r", "rwx", "none"])
})

/** `madvise-dontneed`: drop pages; they read as zero after. */
const MadviseDontneedStep = Schema.Struct({
  op: Schema.Literal("madvise-dontneed"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PageLength)
})

/** `mremap`: move/resize a buffer; `as` names the new buffer (else `buf` keeps its name). */
const MremapStep = Schema.Struct({
  op: Schema.Literal("mremap"),
  buf: BufferName,
  newLength: PageLength,
  as: optional(BufferName),
  dontUnmap: optional(Schema.Boolean)
})

const writeFields = {
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PositiveIntLike),
  pattern: Pattern
}
const readFields = {
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PositiveIntLike),
  expect: Expect
}

/** `cpu-write`: the CPU writes the pattern. */
const CpuWriteStep = Schema.Struct({ op: Schema.Literal("cpu-write"), ...writeFields })
/** `gpu-write`: the GPU writes the pattern. */
const GpuWriteStep = Schema.Struct({ op: Schema.Literal("gpu-write"), ...writeFields })
/** `cpu-read`: the CPU reads and compares with `expect`. */
const CpuReadStep = Schema.Struct({ op: Schema.Literal("cpu-read"), ...readFields })
/** `gpu-read`: the GPU reads and compares with `expect`. */
const GpuReadStep = Schema.Struct({ op: Schema.Literal("gpu-read"), ...readFields })

/** `gpu-atomic-inc`: a 32-bit atomic increment by the GPU at `offset`. */
const GpuAtomicIncStep = Schema.Struct({
  op: Schema.Literal("gpu-atomic-inc"),
  buf: BufferName,
  offset: NonNegativeIntLike
})

/** `gpu-fault`: one GPU page fault through the fault handler, no access. */
const GpuFaultStep = Schema.Struct({
  op: Schema.Literal("gpu-fault"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  write: optional(Schema.Boolean)
})

/** `prefetch`: migrate ahead of use. */
const PrefetchStep = Schema.Struct({
  op: Schema.Literal("prefetch"),
  buf: BufferName,
  offset: optional(NonNegativeIntLike),
  length: optional(PositiveIntLike),
  to: Schema.Literals(["vram", "system"])
})

/** `evict-all`: every device allocation back to RAM. */
const EvictAllStep = Schema.Struct({ op: Schema.Literal("evict-all") })

const RangePair = Schema.Tuple([NonNegativeIntLike, NonNegativeIntLike]).check(
  Schema.makeFilter(([start, end]: readonly [number, number]) =>
    end > start || { path: [1], issue: `expected an end above the start ${formatHex(start)}, got ${formatHex(end)}` }
  )
)

/** `expect-ranges`: the live GPU SVM ranges, `[start, end)` absolute addresses. */
const ExpectRangesStep = Schema.Struct({
  op: Schema.Literal("expect-ranges"),
  ranges: Schema.Array(RangePair)
})

/** `barrier`: threads wait for each other at the named barrier. */
const BarrierStep = Schema.Struct({ op: Schema.Literal("barrier"), name: NonEmpty("barrier name") })

/** `exit`: the process exits; everything must be torn down. */
const ExitStep = Schema.Struct({ op: Schema.Literal("exit") })

const NESTABLE = [
  MmapStep,
  MunmapStep,
  MprotectStep,
  MadviseDontneedStep,
  MremapStep,
  CpuWriteStep,
  GpuWriteStep,
  CpuReadStep,
  GpuReadStep,
  GpuAtomicIncStep,
  GpuFaultStep,
  PrefetchStep,
  EvictAllStep,
  ExpectRangesStep,
  BarrierStep,
  ExitStep
] as const

/**
 * Schema of a step allowed inside `expect-error`: any op but `expect-error`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const NestedStep = Schema.Union(NESTABLE).annotate({ expected: "a step object with a known op" })

/** `expect-error`: run `step` and require the typed error `tag` (e.g. `"BadAddress"`). */
const ExpectErrorStep = Schema.Struct({
  op: Schema.Literal("expect-error"),
  step: NestedStep,
  tag: NonEmpty("error tag")
})

/**
 * Schema of one step: a union tagged by `op`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Step = Schema.Union([...NESTABLE, ExpectErrorStep]).annotate({ expected: "a step object with a known op" })

/**
 * One decoded step (a union tagged by `op`).
 *
 * @category models
 * @since 0.1.0
 */
export type Step = typeof Step.Type
/**
 * A step allowed inside `expect-error`.
 *
 * @category models
 * @since 0.1.0
 */
export type NestedStep = typeof NestedStep.Type
/**
 * The name of an op.
 *
 * @category models
 * @since 0.1.0
 */
export type StepOp = Step["op"]
/**
 * The step of one op: `StepOf<"mmap">`.
 *
 * @category models
 * @since 0.1.0
 */
export type StepOf<Op extends StepOp> = Extract<Step, { readonly op: Op }>

/** @category models @since 0.1.0 */
export type MmapStep = StepOf<"mmap">
/** @category models @since 0.1.0 */
export type MunmapStep = StepOf<"munmap">
/** @category models @since 0.1.0 */
export type MprotectStep = StepOf<"mprotect">
/** @category models @since 0.1.0 */
export type MadviseDontneedStep = StepOf<"madvise-dontneed">
/** @category models @since 0.1.0 */
export type MremapStep = StepOf<"mremap">
/** @category models @since 0.1.0 */
export type WriteStep = StepOf<"cpu-write" | "gpu-write">
/** @category models @since 0.1.0 */
export type ReadStep = StepOf<"cpu-read" | "gpu-read">
/** @category models @since 0.1.0 */
export type GpuAtomicIncStep = StepOf<"gpu-atomic-inc">
/** @category models @since 0.1.0 */
export type GpuFaultStep = StepOf<"gpu-fault">
/** @category models @since 0.1.0 */
export type PrefetchStep = StepOf<"prefetch">
/** @category models @since 0.1.0 */
export type ExpectErrorStep = StepOf<"expect-error">
/** @category models @since 0.1.0 */
export type ExpectRangesStep = StepOf<"expect-ranges">
/** @category models @since 0.1.0 */
export type BarrierStep = StepOf<"barrier">
/** Mapping protection names of `mmap` / `mprotect`. @category models @since 0.1.0 */
export type ProtName = MprotectStep["prot"]
/** Mapping kinds of `mmap`. @category models @since 0.1.0 */
export type MappingKind = NonNullable<MmapStep["kind"]>

/**
 * Every op name, in the order of scenarios.md.
 *
 * @category models
 * @since 0.1.0
 */
export const STEP_OPS: ReadonlyArray<StepOp> = [
  ...NESTABLE.map((s) => s.fields.op.literal),
  "expect-error"
]

// ---------------------------------------------------------------------------
// Scenario
// ---------------------------------------------------------------------------

/**
 * Schema of the `machine` block: VRAM per pagemap (0 = no device memory), the
 * seed of the thread interleaving, and fault-injection counts.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MachineBlock = Schema.Struct({
  vramBytes: optional(NonNegativeIntLike),
  schedule: optional(Schema.Struct({ seed: optional(NonNegativeIntLike) })),
  inject: optional(Schema.Struct({
    hmmBusy: optional(NonNegativeIntLike),
    dmaMapFail: optional(NonNegativeIntLike),
    vramAllocFail: optional(NonNegativeIntLike),
    nonBlockable: optional(NonNegativeIntLike),
    /** kernel-semantics §11.16: the next N `mmu_interval_read_retry` checks see the sequence moved. */
    seqRace: optional(NonNegativeIntLike),
    /** kernel-semantics §11.16: the next N pfn-array allocations of `drm_gpusvm_range_evict` fail (ENOMEM). */
    evictPfnAllocFail: optional(NonNegativeIntLike)
  }))
})
/** @category models @since 0.1.0 */
export type MachineBlock = typeof MachineBlock.Type

/**
 * Schema of the `svm` block (the `drm_gpusvm_init` arguments); omitted fields
 * take kernel-like defaults. Also checked against the `GpuSvmConfig` rules.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SvmSpec = Schema.Struct({
  chunkSizes: optional(Schema.Array(PositiveIntLike)),
  notifierSize: optional(PositiveIntLike),
  checkPagesThreshold: optional(NonNegativeIntLike),
  gpuvaStart: optional(NonNegativeIntLike),
  gpuvaEnd: optional(PositiveIntLike),
  /** The HMM retry timeout of get_pages / check_pages / evict, ms (default 1000, the kernel's `HMM_RANGE_DEFAULT_TIMEOUT`). */
  hmmTimeoutMs: optional(NonNegativeIntLike),
  /** kernel-semantics §11.16: the kernel profile, `"6.17"` (the seed, bugs included) or `"7.0"` (default). */
  kernel: optional(Schema.Literals(GpuSvmConfig.KERNEL_PROFILES)),
  /** kernel-semantics §11.3: a read-only GPU mirror (default false, Xe's writable mirror). */
  readOnlyMirror: optional(Schema.Boolean),
  /** kernel-semantics §11.4: `"retry"` (default, Xe's bounded livelock) or `"recreate"` (drop and re-create the range). */
  onSplitVma: optional(Schema.Literals(["retry", "recreate"]))
})
/** @category models @since 0.1.0 */
export type SvmSpec = typeof SvmSpec.Type

/**
 * The migration policies: never to VRAM, always, or Xe-like (the default).
 *
 * @category schemas
 * @since 0.1.0
 */
export const MigratePolicy = Schema.Literals(["never", "always", "xe"])
/** @category models @since 0.1.0 */
export type MigratePolicy = typeof MigratePolicy.Type

/**
 * The policy used when a file gives none.
 *
 * @category constructors
 * @since 0.1.0
 */
export const DEFAULT_MIGRATE_POLICY: MigratePolicy = "xe"

/**
 * Schema of one thread: its steps, run in order.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ScenarioThread = Schema.Struct({ steps: Schema.Array(Step) })
/** @category models @since 0.1.0 */
export type ScenarioThread = typeof ScenarioThread.Type

const ScenarioName = Schema.String.check(
  Schema.makeFilter((s: string) =>
    /^[a-z0-9-]+$/.test(s) || `expected a name of lowercase letters, digits and "-" ([a-z0-9-]+), got ${JSON.stringify(s)}`
  )
)

const commonFields = {
  name: ScenarioName,
  description: optional(Schema.String),
  machine: optional(MachineBlock),
  svm: optional(SvmSpec)
}

/** A problem found by a whole-file check, at a path relative to the file root. */
interface PathIssue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly issue: string
}

/** The shape of a file as written: `steps` or `threads`, `policy` optional. */
const ScenarioFileShape = Schema.Struct({
  ...commonFields,
  policy: optional(Schema.Struct({ migrate: optional(MigratePolicy) })),
  steps: optional(Schema.Array(Step)),
  threads: optional(
    Schema.Array(ScenarioThread).check(Schema.makeFilter((ts) => ts.length > 0 || "expected at least one thread"))
  )
})
type ScenarioFileType = typeof ScenarioFileShape.Type

const exactlyOneOfStepsThreads = (f: ScenarioFileType): true | PathIssue => {
  if (f.steps !== undefined && f.threads !== undefined) {
    return { path: ["threads"], issue: `give either "steps" (one thread) or "threads", not both` }
  }
  if (f.steps === undefined && f.threads === undefined) {
    return { path: ["steps"], issue: `missing key: give "steps" (one thread) or "threads"` }
  }
  return true
}

/** The threads of a file with the path of each thread's `steps`. */
const threadsOf = (f: ScenarioFileType): ReadonlyArray<{ readonly steps: ReadonlyArray<Step>; readonly at: ReadonlyArray<PropertyKey> }> =>
  f.threads !== undefined
    ? f.threads.map((t, i) => ({ steps: t.steps, at: ["threads", i, "steps"] }))
    : [{ steps: f.steps ?? [], at: ["steps"] }]

/** The buffer a step reads or changes, if any. */
const bufOf = (s: Step | NestedStep): string | undefined => ("buf" in s ? s.buf : undefined)

/**
 * The buffer-reference and bounds checks: every `buf` names a buffer created
 * by `as`, and offsets/lengths stay inside buffers of statically known length.
 */
const bufferIssues = (f: ScenarioFileType): Array<PathIssue> => {
  const threads = threadsOf(f)
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

/** The `svm` block against the `GpuSvmConfig` rules of kernel-semantics §2. */
const svmIssues = (f: ScenarioFileType): Array<PathIssue> => {
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

const ScenarioFile = ScenarioFileShape.check(
  Schema.makeFilter(exactlyOneOfStepsThreads, undefined, true),
  Schema.makeFilter((f: ScenarioFileType) => {
    const issues = [...svmIssues(f), ...bufferIssues(f)]
    return issues.length === 0 ? true : issues
  })
)

/**
 * Schema of a decoded scenario (the normal form: always `threads`, always a
 * `policy`). Decoding it directly accepts only the normal form; files go
 * through {@link Scenario}.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ScenarioNormal = Schema.Struct({
  ...commonFields,
  policy: Schema.Struct({ migrate: MigratePolicy }),
  threads: Schema.Array(ScenarioThread)
})

/**
 * The codec from a scenario file (`Encoded`, as written in JSON) to a decoded
 * `Scenario` (`Type`, normal form). Strict about unknown keys only with
 * {@link PARSE_OPTIONS}: decode through {@link decodeScenario}.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Scenario = ScenarioFile.pipe(
  Schema.decodeTo(
    Schema.toType(ScenarioNormal),
    SchemaTransformation.transform({
      decode: (f: ScenarioFileType): typeof ScenarioNormal.Type => {
        const { steps, threads, policy, ...rest } = f
        return {
          ...rest,
          policy: { migrate: policy?.migrate ?? DEFAULT_MIGRATE_POLICY },
          threads: threads ?? [{ steps: steps ?? [] }]
        }
      },
      encode: (s: typeof ScenarioNormal.Type): ScenarioFileType => s
    })
  )
)

/**
 * A decoded scenario: one or more threads of steps, plus the machine, svm and
 * policy settings.
 *
 * @category models
 * @since 0.1.0
 */
export type Scenario = typeof Scenario.Type

/**
 * The parse options the decoder uses: all errors, unknown keys rejected, inputs
 * reported in messages.
 *
 * @category parsing
 * @since 0.1.0
 */
export const PARSE_OPTIONS: SchemaAST.ParseOptions = { errors: "all", onExcessProperty: "error", reportInput: true }

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/**
 * One problem: the JSON path (`steps[3].length`, `<root>` for the file itself)
 * and what is wrong there.
 *
 * @category models
 * @since 0.1.0
 */
export const ScenarioIssue = Schema.Struct({ path: Schema.String, reason: Schema.String })
/** @category models @since 0.1.0 */
export type ScenarioIssue = typeof ScenarioIssue.Type

/**
 * A scenario file that cannot be decoded (exit status 2, nothing run). `path`
 * and `reason` are those of the first problem; `issues` holds all of them. The
 * `message` has one line `FILE: PATH: REASON` per problem.
 *
 * @category errors
 * @since 0.1.0
 */
export class ScenarioDecodeError extends Schema.TaggedError<ScenarioDecodeError>()("ScenarioDecodeError", {
  file: Schema.optionalKey(Schema.String),
  path: Schema.String,
  reason: Schema.String,
  issues: Schema.Array(ScenarioIssue)
}) {
  /** The problems, one line each: `FILE: PATH: REASON` (without `FILE: ` when no file is known). */
  get lines(): ReadonlyArray<string> {
    const prefix = this.file === undefined ? "" : `${this.file}: `
    const all = this.issues.length > 0 ? this.issues : [{ path: this.path, reason: this.reason }]
    return all.map((i) => `${prefix}${i.path}: ${i.reason}`)
  }
  override get message(): string {
    return this.lines.join("\n")
  }
}

/**
 * Renders a JSON path: dotted keys and `[index]`, e.g. `threads[1].steps[3].length`;
 * the empty path is `<root>`.
 *
 * @category formatting
 * @since 0.1.0
 */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`
    else if (typeof key === "string" && /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key)) out += out === "" ? key : `.${key}`
    else out += `[${JSON.stringify(String(key))}]`
  }
  return out === "" ? "<root>" : out
}

const STEP_UNIONS = new Set<SchemaAST.AST>([Step.ast, NestedStep.ast])

const lowerFirst = (s: string): string => (s.length === 0 ? s : s[0]!.toLowerCase() + s.slice(1))

const leafHook: SchemaIssue.LeafHook = (issue) => {
  switch (issue._tag) {
    case "MissingKey":
      return "missing required key"
    case "UnexpectedKey":
      return issue.ast._tag === "Arrays" ? "unexpected extra element" : "unknown key"
    case "InvalidType": {
      // "expected array, got an object" rather than the whole (possibly huge) input
      const expected = lowerFirst(SchemaIssue.defaultLeafHook(new SchemaIssue.InvalidType(issue.ast)))
      return SchemaIssue.hasInput(issue) ? `${expected}, got ${show(issue.input)}` : expected
    }
    default:
      return lowerFirst(SchemaIssue.defaultLeafHook(issue))
  }
}
const standard = SchemaIssue.makeFormatterStandardSchemaV1({ leafHook })

/** Why a step object matched no op: missing, non-string, unknown or misplaced `op`. */
const stepProblem = (input: unknown, path: ReadonlyArray<PropertyKey>, nested: boolean): Array<PathIssue> => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return [{ path, issue: `expected a step object with an "op", got ${show(input)}` }]
  }
  const op = (input as Record<string, unknown>)["op"]
  if (op === undefined) return [{ path: [...path, "op"], issue: "missing required key" }]
  if (typeof op !== "string") return [{ path: [...path, "op"], issue: `expected an op name, got ${show(op)}` }]
  if (nested && op === "expect-error") return [{ path: [...path, "op"], issue: `"expect-error" cannot be nested` }]
  return [{ path: [...path, "op"], issue: `unknown op ${JSON.stringify(op)} (known: ${STEP_OPS.join(", ")})` }]
}

/** Flattens an issue tree into path + message pairs, with step unions explained. */
const flatten = (issue: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>): Array<PathIssue> => {
  switch (issue._tag) {
    case "Pointer":
      return flatten(issue.issue, [...path, ...issue.path])
    case "Composite":
      return issue.issues.flatMap((i) => flatten(i, path))
    case "AnyOf":
      if (issue.issues.length > 0) return issue.issues.flatMap((i) => flatten(i, path))
      if (STEP_UNIONS.has(issue.ast)) {
        return stepProblem(SchemaIssue.hasInput(issue) ? issue.input : undefined, path, issue.ast === NestedStep.ast)
      }
      if (SchemaIssue.hasInput(issue)) {
        // "expected "r" | "rw", got an object" rather than the whole input
        const expected = standard(new SchemaIssue.AnyOf(issue.ast, [])).issues[0]?.message ?? "Expected a valid value"
        return [{ path, issue: `${lowerFirst(expected)}, got ${show(issue.input)}` }]
      }
      break
    case "Encoding":
      return flatten(issue.issue, path)
  }
  return standard(issue).issues.map((i) => ({
    path: [...path, ...(i.path ?? []).map((k) => (typeof k === "object" ? k.key : k))],
    issue: lowerFirst(i.message)
  }))
}

/**
 * Flattens any Schema issue into one `{ path, reason }` per problem, paths
 * rendered by {@link formatPath} (also useful for other schemas, e.g. results).
 *
 * @category formatting
 * @since 0.1.0
 */
export const describeIssue = (issue: SchemaIssue.Issue): ReadonlyArray<ScenarioIssue> =>
  flatten(issue, []).map((i) => ({ path: formatPath(i.path), reason: i.issue }))

/**
 * Turns a Schema issue into the decode error, paths relative to the file root.
 *
 * @category errors
 * @since 0.1.0
 */
export const toDecodeError = (issue: SchemaIssue.Issue, file?: string): ScenarioDecodeError => {
  const issues = describeIssue(issue)
  const first = issues[0] ?? { path: "<root>", reason: "invalid scenario" }
  return new ScenarioDecodeError({ ...(file === undefined ? {} : { file }), path: first.path, reason: first.reason, issues })
}

// ---------------------------------------------------------------------------
// Decoders
// ---------------------------------------------------------------------------

const decodeRaw = Schema.decodeUnknownExit(Scenario)

/**
 * Decodes a parsed JSON value into a `Scenario` (pure, synchronous). Fails with
 * a `ScenarioDecodeError` listing every problem with its JSON path; `file`
 * prefixes each message line.
 *
 * @category parsing
 * @since 0.1.0
 */
export const decodeScenario = (json: unknown, file?: string): Exit.Exit<Scenario, ScenarioDecodeError> => {
  const exit = decodeRaw(json, PARSE_OPTIONS)
  if (Exit.isSuccess(exit)) return Exit.succeed(exit.value)
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  return error === undefined
    ? Exit.failCause(exit.cause as never)
    : Exit.fail(toDecodeError(error.error.issue, file))
}

/**
 * `decodeScenario` as an Effect.
 *
 * @category parsing
 * @since 0.1.0
 */
export const decodeScenarioEffect = (json: unknown, file?: string): Effect.Effect<Scenario, ScenarioDecodeError> =>
  Effect.suspend(() => decodeScenario(json, file))

/**
 * Parses JSON text, then decodes it. Text that is not JSON fails with path
 * `<root>` and the parser's message.
 *
 * @category parsing
 * @since 0.1.0
 */
export const decodeScenarioText = (text: string, file?: string): Exit.Exit<Scenario, ScenarioDecodeError> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    const reason = `invalid JSON: ${e instanceof Error ? e.message : String(e)}`
    return Exit.fail(new ScenarioDecodeError({ ...(file === undefined ? {} : { file }), path: "<root>", reason, issues: [{ path: "<root>", reason }] }))
  }
  return decodeScenario(json, file)
}

// ---------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------

/**
 * The byte a pattern `p` puts at buffer offset `i`: `(p + i) % 256`.
 *
 * @category patterns
 * @since 0.1.0
 */
export const patternByte = (p: number, i: number): number => (p + i) % 256

/**
 * The bytes a read of `length` bytes at buffer offset `offset` (default 0)
 * expects: the pattern's bytes (the pattern is relative to the buffer start) or
 * zeros.
 *
 * @category patterns
 * @since 0.1.0
 */
export const expectedBytes = (expect: Expect, length: number, offset = 0): Uint8Array => {
  const out = new Uint8Array(length)
  if (expect !== "zero") for (let i = 0; i < length; i++) out[i] = patternByte(expect, offset + i)
  return out
}

/**
 * The path a runner names a step by in failures: `steps[i]` when the scenario
 * has one thread, `threads[t].steps[i]` otherwise (the normal form; a file
 * that wrote a single thread under `threads` is named as if it used `steps`).
 *
 * @category formatting
 * @since 0.1.0
 */
export const stepPath = (scenario: Scenario, thread: number, index: number): string =>
  scenario.threads.length === 1 && thread === 0 ? `steps[${index}]` : `threads[${thread}].steps[${index}]`
