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
  if (expect !== "zero") for (let i = 0; i < length; i++) out[i] = patternByte(expect, offset + i)
  return out
}
