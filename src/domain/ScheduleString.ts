/**
 * The schedule string: a run of the explorer written down so that it can be
 * replayed exactly (`gpusvm simulate FILE --schedule STRING`,
 * `Explore.check(p, { strategy: { replay } })`).
 *
 * A schedule is the sequence of actors chosen at each decision of a controlled
 * run, actors being numbered in the order they first reached a yield point
 * (a deterministic order: the run is deterministic given its choices). The
 * string is the format version, a colon, then the sequence run-length
 * encoded: `s1:0*3.1.0*2` means actor 0 three times, actor 1 once, actor 0
 * twice. The empty schedule is `s1:`.
 *
 * @since 0.2.0
 */
import { Result, Schema } from "effect"

/** The format version this build writes and reads. @since 0.2.0 @category constants */
export const VERSION = "s1"

/**
 * A schedule string that does not parse: wrong version, bad numbers. Its
 * `message` names the offending part.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidSchedule extends Schema.TaggedError<InvalidSchedule>()("InvalidSchedule", {
  input: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    const shown = this.input.length > 60 ? `${this.input.slice(0, 60)}…` : this.input
    return `invalid schedule ${JSON.stringify(shown)}: ${this.reason}`
  }
}

/**
 * Writes a sequence of actor indices as a schedule string.
 *
 * @since 0.2.0
 * @category constructors
 */
export const encode = (choices: ReadonlyArray<number>): string => {
  const parts: Array<string> = []
  let i = 0
  while (i < choices.length) {
    const a = choices[i]!
    let j = i + 1
    while (j < choices.length && choices[j] === a) j++
    const n = j - i
    parts.push(n === 1 ? String(a) : `${a}*${n}`)
    i = j
  }
  return `${VERSION}:${parts.join(".")}`
}

const INT = /^(0|[1-9][0-9]{0,8})$/

/**
 * Longest schedule a string may decode to (keeps a hostile `0*999999999` from allocating gigabytes).
 *
 * @category constants
 */
export const MAX_LENGTH = 10_000_000

/**
 * Reads a schedule string back into actor indices. Fails with
 * `InvalidSchedule` on anything but the format written by {@link encode}
 * (surrounding white space is ignored).
 *
 * @since 0.2.0
 * @category decoding
 */
export const decode = (input: string): Result.Result<ReadonlyArray<number>, InvalidSchedule> => {
  const s = input.trim()
  const colon = s.indexOf(":")
  if (colon < 0) return Result.fail(new InvalidSchedule({ input, reason: `expected "${VERSION}:…"` }))
  const version = s.slice(0, colon)
  if (version !== VERSION) {
    return Result.fail(new InvalidSchedule({ input, reason: `format version ${JSON.stringify(version)} is not ${VERSION}` }))
  }
  const body = s.slice(colon + 1)
  const out: Array<number> = []
  if (body === "") return Result.succeed(out)
  for (const part of body.split(".")) {
    const star = part.indexOf("*")
    const a = star < 0 ? part : part.slice(0, star)
    const n = star < 0 ? "1" : part.slice(star + 1)
    if (!INT.test(a)) return Result.fail(new InvalidSchedule({ input, reason: `${JSON.stringify(part)}: actor must be a whole number` }))
    if (!INT.test(n) || n === "0") return Result.fail(new InvalidSchedule({ input, reason: `${JSON.stringify(part)}: count must be a whole number ≥ 1` }))
    const count = Number(n)
    if (out.length + count > MAX_LENGTH) return Result.fail(new InvalidSchedule({ input, reason: `longer than ${MAX_LENGTH} steps` }))
    const actor = Number(a)
    for (let k = 0; k < count; k++) out.push(actor)
  }
  return Result.succeed(out)
}
