/**
 * The sizes codec of scenario files (`scenarios.md`): numbers written as JSON
 * numbers or as strings — decimal `"4096"`, hex `"0x1000"`, binary multiples
 * `"64K"` / `"2M"` / `"1G"` / `"1T"` — read into safe non-negative integers,
 * rendered back (`formatHex`, `formatSize`), and the Schemas of the integer
 * fields (addresses, lengths, page lengths, alignments). Fractions (`"2.5K"`),
 * negatives and values `>= 2^53` are rejected with a message naming the
 * accepted forms.
 *
 * @since 0.1.0
 */
import { Effect, Result, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { hex, PAGE_SIZE } from "../Address.ts"

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
 * Renders a non-negative safe integer as the scenario hex string `"0x…"`
 * (anything else as given, like `Address.hex`).
 *
 * @category formatting
 * @since 0.1.0
 */
export const formatHex = (n: number): string => hex(n)

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

/**
 * Renders an input value for an error message: strings quoted, scalars as
 * written, arrays and objects by their kind only (never a whole, possibly huge,
 * input).
 *
 * @category formatting
 * @since 0.1.0
 */
export const showValue = (u: unknown): string => {
  if (typeof u === "string") return JSON.stringify(u)
  if (typeof u === "number" || typeof u === "boolean" || u === null) return String(u)
  if (Array.isArray(u)) return "an array"
  if (typeof u === "object") return "an object"
  return String(u)
}

const NUMBER_FORMS = `a JSON number or a string like "4096", "0x1000", "64K", "2M"`

/**
 * The flavours of integer fields: each knows its bounds and its message.
 *
 * @category models
 * @since 0.1.0
 */
export interface IntSpec {
  /** e.g. "a positive integer". */
  readonly expected: string
  readonly min: number
  readonly max: number
}

const intFailure = (spec: IntSpec, input: unknown, problem: IntLikeProblem | "below" | "above"): string => {
  switch (problem) {
    case "not-a-number":
      return `expected ${spec.expected} (${NUMBER_FORMS}), got ${showValue(input)}`
    case "too-large":
      // a spec with its own upper bound names it in `expected` (e.g. "a power of two ≤ 2^52")
      return spec.max < Number.MAX_SAFE_INTEGER
        ? `expected ${spec.expected}, got ${showValue(input)}`
        : `expected ${spec.expected} below 2^53, got ${showValue(input)}`
    default:
      return `expected ${spec.expected}, got ${showValue(input)}`
  }
}

/**
 * Schema of a scenario number within the bounds of `spec` (encoded
 * `number | string`, decoded a safe integer), read by {@link parseIntLike};
 * its failures say `expected <spec.expected>, got <input>`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const intCodec = (spec: IntSpec) =>
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

const pageMultiple = Schema.makeFilter((n: number) =>
  n % PAGE_SIZE === 0 || `expected a multiple of ${PAGE_SIZE} (the page size), got ${n} (${formatHex(n)})`
)

/**
 * Schema of a positive length that is a multiple of the 4 KiB page size (the
 * lengths of `mmap`, `munmap`, `mprotect`, `madvise-dontneed`, `mremap`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const PageLength = PositiveIntLike.check(pageMultiple)

/**
 * Schema of a non-negative multiple of the 4 KiB page size, 0 included (the
 * `machine.vramBytes` of a pagemap: its memory is handed out in pages).
 *
 * @category schemas
 * @since 0.2.0
 */
export const PageMultiple = NonNegativeIntLike.check(pageMultiple)

const isPowerOfTwo = (n: number): boolean => n > 0 && Number.isSafeInteger(n) && 2 ** Math.round(Math.log2(n)) === n

/**
 * The largest notifier size a scenario may ask for: 2^52, the largest power of
 * two below the 2^53 address limit.
 *
 * @category constants
 * @since 0.2.0
 */
export const MAX_NOTIFIER_SIZE = 2 ** 52

/**
 * Schema of the `svm.notifierSize` of a scenario: a power of two ≤ 2^52 (the
 * `notifier_size` of `drm_gpusvm_init`, kernel-semantics §2); anything else,
 * too large included, says so rather than "below 2^53".
 *
 * @category schemas
 * @since 0.2.0
 */
export const NotifierSize = intCodec({ expected: "a power of two ≤ 2^52", min: 1, max: MAX_NOTIFIER_SIZE }).check(
  Schema.makeFilter((n: number) => isPowerOfTwo(n) || `expected a power of two ≤ 2^52, got ${n}`)
)

/**
 * Schema of a positive power of two (the `align` of `mmap`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Alignment = PositiveIntLike.check(
  Schema.makeFilter((n: number) => isPowerOfTwo(n) || `expected a power of two, got ${n}`)
)
