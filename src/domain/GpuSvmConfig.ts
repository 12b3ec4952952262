/**
 * `GpuSvmConfig`: the arguments of `drm_gpusvm_init` that are data (the mm and
 * ops are supplied as services/callbacks), decoded with effect/Schema.
 *
 * Every rule of kernel-semantics §2 is checked and reported as an
 * `InvalidConfig { field, reason }` naming the offending field: chunk sizes must
 * be strictly descending powers of two ending in 4096; the notifier size a
 * power of two of at least 4096; `mmStart` page aligned; `mmRange` a non-empty
 * page multiple; every address a safe integer with `mmStart + mmRange <= 2^53`.
 * Chunk sizes larger than the notifier size are accepted (kernel-semantics
 * §11.14): they never fit a notifier, so they are never chosen.
 *
 * `kernel` selects the kernel profile (kernel-semantics §11.16): `"7.0"` (the
 * default) has the upstream fixes, `"6.17"` reproduces the seed, bugs included.
 *
 * @since 0.1.0
 */
import { Effect, Exit, Schema } from "effect"
import { ADDRESS_LIMIT, isPageAligned, isPowerOfTwo, PAGE_SIZE } from "./Address.ts"
import { InvalidConfig } from "./Errors.ts"

/**
 * The decoded, validated configuration of one GPU SVM instance.
 *
 * @category models
 */
export interface GpuSvmConfig {
  /** Name of the instance (`gpusvm->name`), for messages. */
  readonly name: string
  /** Start of the mirrored CPU address space (`mm_start`). */
  readonly mmStart: number
  /** Size of the mirrored space (`mm_range`): `[mmStart, mmStart + mmRange)`. */
  readonly mmRange: number
  /** Size and alignment of each notifier window (`notifier_size`); 512 MiB recommended. */
  readonly notifierSize: number
  /** Range sizes to try, largest first, ending in 4096 (`chunk_sizes`). */
  readonly chunkSizes: ReadonlyArray<number>
  /** Device-private page owner handed to HMM (`device_private_page_owner`); undefined = none. */
  readonly devicePrivateOwner: string | undefined
  /** Bound on HMM `EBUSY` retries in get_pages / evict, in ms of the Effect clock (kernel: `HMM_RANGE_DEFAULT_TIMEOUT` = 1000). */
  readonly hmmTimeoutMs: number
  /**
   * The kernel profile (kernel-semantics §11.16). `"7.0"` (default): upstream's
   * fixes. `"6.17"`: the seed's behaviour, bugs included — get_pages restarts
   * (sequence moved, `EAGAIN`) without bound (here: until a fixed retry budget,
   * then a recorded livelock), huge-PTE order not clamped to the range
   * (CVE-2025-40336), read-only ranges mapped bidirectional, no `allowMixed`,
   * and `range_evict` leaking its mm reference when the pfn array allocation fails.
   */
  readonly kernel: KernelProfile
}

/**
 * The kernel profiles (kernel-semantics §11.16): the seed (`"6.17"`) and upstream with its fixes (`"7.0"`).
 *
 * @category constants
 */
export const KERNEL_PROFILES = ["6.17", "7.0"] as const

/**
 * One kernel profile.
 *
 * @category models
 */
export type KernelProfile = (typeof KERNEL_PROFILES)[number]

/**
 * Defaults used by `decode` for omitted optional fields (kernel-like: Xe's chunk sizes, 512 MiB notifiers).
 *
 * @category constants
 */
export const DEFAULTS = {
  name: "gpusvm",
  mmStart: 0,
  mmRange: ADDRESS_LIMIT,
  notifierSize: 512 * 1024 * 1024,
  chunkSizes: [2 * 1024 * 1024, 64 * 1024, 4096] as ReadonlyArray<number>,
  hmmTimeoutMs: 1000,
  kernel: "7.0" as KernelProfile
} as const

const Int = Schema.Number.check(Schema.isInt())
/** A whole number that may reach 2^53 (a size or exclusive end; `isInt` stops at 2^53 - 1). */
const Whole = Schema.Number.check(Schema.makeFilter((n: number) => Number.isInteger(n) || "Expected an integer"))

/** Per-field shape schemas: a field that fails its schema is an `InvalidConfig` naming it. */
const FieldSchemas = {
  name: Schema.String.check(Schema.isMinLength(1)),
  mmStart: Int,
  mmRange: Whole,
  notifierSize: Int,
  chunkSizes: Schema.Array(Int).check(Schema.isMinLength(1)),
  devicePrivateOwner: Schema.String,
  hmmTimeoutMs: Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)),
  kernel: Schema.Literals(KERNEL_PROFILES)
} as const

/**
 * The input accepted by `decode` and by the `GpuSvm.layer` / `Driver.layer`
 * constructors: every field optional (omitted ones come from `DEFAULTS`), typed
 * so an editor completes them. `decode` still checks every value at run time
 * (a JSON scenario or a JavaScript caller may pass anything) and rejects a key
 * that is not a field (e.g. the typo `chunkSize`) with `InvalidConfig` naming it.
 *
 * @category config
 * @since 0.1.0
 */
export interface GpuSvmConfigInput {
  /** `gpusvm->name`. */
  readonly name?: string
  /** `mm_start` (page-aligned). */
  readonly mmStart?: number
  /** `mm_range` (a page multiple; `mmStart + mmRange ≤ 2^53`). */
  readonly mmRange?: number
  /** `notifier_size`: a power of two ≥ 4096. */
  readonly notifierSize?: number
  /** `chunk_sizes`: powers of two, strictly descending, ending in 4096. */
  readonly chunkSizes?: ReadonlyArray<number>
  /** `device_private_page_owner`. */
  readonly devicePrivateOwner?: string
  /** HMM EBUSY retry bound in ms. */
  readonly hmmTimeoutMs?: number
  /** The kernel profile (§11.16). */
  readonly kernel?: KernelProfile
}

/**
 * The field names of `GpuSvmConfigInput`, in declaration order (`decode` rejects every other key).
 *
 * @category constants
 */
export const FIELDS: ReadonlyArray<keyof GpuSvmConfigInput> = Object.keys(FieldSchemas) as Array<keyof GpuSvmConfigInput>

type Shaped = { -readonly [K in keyof typeof FieldSchemas]?: (typeof FieldSchemas)[K]["Type"] }

/** Decodes every present field with its schema; the first failure names its field. */
const shape = (input: Record<string, unknown>): Shaped | InvalidConfig => {
  const out: Record<string, unknown> = {}
  for (const field of Object.keys(FieldSchemas) as Array<keyof typeof FieldSchemas>) {
    const raw = input[field]
    if (raw === undefined) continue
    const exit = Schema.decodeUnknownExit(FieldSchemas[field] as unknown as Schema.Codec<unknown>)(raw)
    if (Exit.isFailure(exit)) return new InvalidConfig({ field, reason: describeSchemaFailure(exit.cause) })
    out[field] = exit.value
  }
  return out as Shaped
}

const describeSchemaFailure = (cause: unknown): string => {
  const text = String((cause as { reasons?: ReadonlyArray<{ error?: { message?: string } }> }).reasons?.[0]?.error?.message ?? cause)
  return text.split("\n")[0] ?? text
}

/**
 * The semantic rules of kernel-semantics §2 on an already-shaped config; returns
 * the first violation or undefined.
 *
 * @category functions
 */
export const violation = (c: GpuSvmConfig): InvalidConfig | undefined => {
  const bad = (field: string, reason: string) => new InvalidConfig({ field, reason })
  if (!Number.isSafeInteger(c.mmStart) || c.mmStart < 0) return bad("mmStart", `must be a safe non-negative integer, got ${c.mmStart}`)
  if (!isPageAligned(c.mmStart)) return bad("mmStart", `must be ${PAGE_SIZE}-byte aligned, got ${c.mmStart}`)
  if (!Number.isInteger(c.mmRange) || c.mmRange <= 0 || c.mmRange > ADDRESS_LIMIT) {
    return bad("mmRange", `must be a positive integer of at most 2^53, got ${c.mmRange}`)
  }
  if (!isPageAligned(c.mmRange)) return bad("mmRange", `must be a multiple of ${PAGE_SIZE}, got ${c.mmRange}`)
  if (c.mmStart + c.mmRange > ADDRESS_LIMIT) return bad("mmRange", `mmStart + mmRange must not exceed 2^53, got ${c.mmStart + c.mmRange}`)
  if (!isPowerOfTwo(c.notifierSize)) return bad("notifierSize", `must be a power of two, got ${c.notifierSize}`)
  if (c.notifierSize < PAGE_SIZE) return bad("notifierSize", `must be at least ${PAGE_SIZE}, got ${c.notifierSize}`)
  if (c.chunkSizes.length === 0) return bad("chunkSizes", "must not be empty")
  for (let i = 0; i < c.chunkSizes.length; i++) {
    const s = c.chunkSizes[i]!
    if (!isPowerOfTwo(s)) return bad("chunkSizes", `chunkSizes[${i}] must be a power of two, got ${s}`)
    if (i > 0 && s >= c.chunkSizes[i - 1]!) return bad("chunkSizes", `must be strictly descending, chunkSizes[${i}] = ${s} after ${c.chunkSizes[i - 1]}`)
  }
  if (c.chunkSizes[c.chunkSizes.length - 1] !== PAGE_SIZE) return bad("chunkSizes", `must end in ${PAGE_SIZE}`)
  // §11.14: a chunk larger than the notifier is accepted (drm_gpusvm_init does not
  // check it); it never fits inside a notifier, so ChunkSize never chooses it.
  if (c.devicePrivateOwner !== undefined && c.devicePrivateOwner.length === 0) return bad("devicePrivateOwner", "must not be empty")
  if (!Number.isFinite(c.hmmTimeoutMs) || c.hmmTimeoutMs < 0) return bad("hmmTimeoutMs", `must be a non-negative finite number, got ${c.hmmTimeoutMs}`)
  return undefined
}

/**
 * `drm_gpusvm_init`'s argument checking: decodes an unknown input into a
 * `GpuSvmConfig`, filling omitted fields from `DEFAULTS`.
 *
 * Errors: `InvalidConfig { field, reason }` for the first malformed field (shape
 * errors first, then the rules of kernel-semantics §2).
 *
 * @category functions
 */
export const decode = (input: GpuSvmConfigInput | unknown): Effect.Effect<GpuSvmConfig, InvalidConfig> =>
  Effect.suspend(() => {
    const exit = decodeExit(input)
    return Exit.isSuccess(exit) ? Effect.succeed(exit.value) : Effect.failCause(exit.cause)
  })

/**
 * Synchronous form of `decode`, returning an `Exit`.
 *
 * @category functions
 */
export const decodeExit = (input: GpuSvmConfigInput | unknown): Exit.Exit<GpuSvmConfig, InvalidConfig> => {
  if (isDecoded(input)) return Exit.succeed(input)
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return Exit.fail(new InvalidConfig({ field: "<root>", reason: "expected an object" }))
  }
  for (const key of Object.keys(input)) {
    if (!(FIELDS as ReadonlyArray<string>).includes(key)) {
      return Exit.fail(new InvalidConfig({ field: key, reason: `unknown field (the fields are ${FIELDS.join(", ")})` }))
    }
  }
  const shaped = shape(input as Record<string, unknown>)
  if (shaped instanceof InvalidConfig) return Exit.fail(shaped)
  const start = shaped.mmStart ?? DEFAULTS.mmStart
  const config: GpuSvmConfig = {
    name: shaped.name ?? DEFAULTS.name,
    mmStart: start,
    mmRange: shaped.mmRange ?? Math.max(DEFAULTS.mmRange - start, 0),
    notifierSize: shaped.notifierSize ?? DEFAULTS.notifierSize,
    chunkSizes: shaped.chunkSizes ?? DEFAULTS.chunkSizes,
    devicePrivateOwner: shaped.devicePrivateOwner,
    hmmTimeoutMs: shaped.hmmTimeoutMs ?? DEFAULTS.hmmTimeoutMs,
    kernel: shaped.kernel ?? DEFAULTS.kernel
  }
  const v = violation(config)
  if (v !== undefined) return Exit.fail(v)
  decodedConfigs.add(config)
  return Exit.succeed(config)
}

const decodedConfigs = new WeakSet<object>()

/**
 * Whether `input` is a config `decode` produced (so decoding it again returns
 * it as it is: `Driver.layer` decodes once and hands the result to
 * `GpuSvm.layer`).
 *
 * @category config
 * @since 0.2.0
 */
export const isDecoded = (input: unknown): input is GpuSvmConfig =>
  typeof input === "object" && input !== null && decodedConfigs.has(input)

/**
 * The exclusive end of the covered space: `mmStart + mmRange`.
 *
 * @category functions
 */
export const mmEnd = (c: GpuSvmConfig): number => c.mmStart + c.mmRange
