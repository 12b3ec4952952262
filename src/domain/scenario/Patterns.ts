/**
 * Scenario patterns (`scenarios.md`): a write fills a buffer with pattern `p`,
 * byte `i` of the buffer holding `(p + i) % 256`; a read expects a pattern or
 * `"zero"`. The Schemas of the `pattern` and `expect` fields and the bytes they
 * stand for.
 *
 * @since 0.1.0
 */
import { Effect, Result, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { intCodec, parseIntLike, showValue } from "./Numbers.ts"

/**
 * Schema of a pattern byte `p` (0–255): byte `i` of the buffer holds `(p + i) % 256`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Pattern = intCodec({ expected: "a pattern from 0 to 255", min: 0, max: 255 })

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
            new SchemaIssue.InvalidValue({ message: `expected a pattern from 0 to 255 or "zero", got ${showValue(input)}` }, input, options)
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
  return expect === "zero" ? out : fillPattern(out, expect, offset)
}

/**
 * Fills `out` with pattern `p` as bytes `offset, offset + 1, …` of a buffer
 * (`out[i] = patternByte(p, offset + i)`): one 256-byte period computed, then
 * copied by doubling (the pattern repeats every 256 bytes), so a 64 MiB window
 * costs a few `copyWithin`s rather than a loop per byte.
 *
 * @category patterns
 * @since 0.2.0
 */
export const fillPattern = (out: Uint8Array, p: number, offset = 0): Uint8Array => {
  const period = Math.min(out.length, 256)
  for (let i = 0; i < period; i++) out[i] = patternByte(p, offset + i)
  for (let filled = period; filled < out.length; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, out.length - filled))
  return out
}

/** The ramp every pattern view is cut from: byte `i` is `i % 256`, 8 MiB + 256 bytes, made on first use. */
let ramp: Uint8Array | undefined

/**
 * The largest `length` {@link patternView} serves from its shared ramp (8 MiB, the scenario runner's
 * `STREAM_PIECE`); longer windows get a fresh buffer.
 *
 * @category patterns
 * @since 0.5.0
 */
export const PATTERN_VIEW_MAX = 8 * 1024 * 1024

/**
 * The bytes of pattern `p` at buffer offsets `offset … offset + length - 1`, as a read-only
 * view: a window of one shared ramp (`(p + offset + i) % 256` is `ramp[(p + offset) % 256 + i]`),
 * so a write step allocates and fills nothing (issue #16). The caller must not write into it;
 * the memory calls that take it (`Cpu.write`, `Gpu.access` "write") copy it. Lengths past
 * {@link PATTERN_VIEW_MAX} get a fresh {@link fillPattern} buffer.
 *
 * @category patterns
 * @since 0.5.0
 */
export const patternView = (p: number, offset: number, length: number): Uint8Array => {
  if (length > PATTERN_VIEW_MAX) return fillPattern(new Uint8Array(length), p, offset)
  ramp ??= fillPattern(new Uint8Array(PATTERN_VIEW_MAX + 256), 0)
  const k = (p + offset) % 256
  return ramp.subarray(k, k + length)
}
