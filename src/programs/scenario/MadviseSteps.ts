/**
 * The Xe madvise steps of a scenario (scenarios.md): `madvise` calls
 * `Driver.madvise` over the buffer window (`DRM_IOCTL_XE_MADVISE`), and
 * `expect-attrs` compares `Driver.queryAttrs` (`VM_QUERY_MEM_RANGE_ATTRS`),
 * clipped to the window, with the expected ranges; an unmet expectation is a
 * failure of the run, never an error of the step.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import type { InvalidArgument } from "../../domain/Errors.ts"
import type { AttrRange, MemAttrs } from "../../domain/MemAttrs.ts"
import type { ExpectAttrsStep, MadviseStep } from "../../domain/scenario/Step.ts"
import type { MadviseAttrs } from "../Attributes.ts"
import { fail, type Interpreter, windowOf } from "./RunEnv.ts"
import { UnknownBuffer } from "./StepError.ts"

/**
 * The steps this family runs.
 *
 * @category models
 * @since 0.3.0
 */
export type MadviseFamilyStep = MadviseStep | ExpectAttrsStep

/** The attributes a step names (only the keys it gives). */
const attrsOf = (s: MadviseAttrs): MadviseAttrs => ({
  ...(s.preferredLoc === undefined ? {} : { preferredLoc: s.preferredLoc }),
  ...(s.migrationPolicy === undefined ? {} : { migrationPolicy: s.migrationPolicy }),
  ...(s.atomic === undefined ? {} : { atomic: s.atomic }),
  ...(s.pat === undefined ? {} : { pat: s.pat })
})

const KEYS = ["preferredLoc", "migrationPolicy", "atomic", "pat"] as const satisfies ReadonlyArray<keyof MemAttrs>

/** What differs between the clipped pieces and the expected ranges (undefined: nothing). */
const mismatch = (got: ReadonlyArray<AttrRange>, want: ExpectAttrsStep["ranges"], base: number): string | undefined => {
  const show = (p: AttrRange) => `[${p.start - base}, ${p.end - base}) ${JSON.stringify(p.attrs)}`
  if (got.length !== want.length || got.some((p, i) => p.start - base !== want[i]!.offset || p.end - p.start !== want[i]!.length)) {
    return `attribute ranges ${got.map(show).join(" ") || "(none)"}, expected boundaries ${want.map((w) => `[${w.offset}, ${w.offset + w.length})`).join(" ")}`
  }
  for (let i = 0; i < got.length; i++) {
    const p = got[i]!
    const w = want[i]!
    const bad = KEYS.filter((k) => w[k] !== undefined && w[k] !== p.attrs[k])
    if (bad.length > 0) return `attribute range ${show(p)}: ${bad.map((k) => `${k} is ${JSON.stringify(p.attrs[k])}, expected ${JSON.stringify(w[k])}`).join("; ")}`
  }
  return undefined
}

/**
 * Runs one madvise step. Errors: `InvalidArgument` from the driver (unaligned
 * or empty window, unknown pagemap, no attribute), or `UnknownBuffer`.
 *
 * @category interpreters
 * @since 0.3.0
 */
export const run: Interpreter<MadviseFamilyStep, InvalidArgument | UnknownBuffer> = (env, step, where) => {
  const w = windowOf(env, step.buf, step.offset, step.length)
  if (w instanceof UnknownBuffer) return Effect.fail(w)
  const start = w.addr
  const end = w.addr + w.length
  if (step.op === "madvise") return env.driver.madvise(start, end, attrsOf(step))
  const base = w.addr - w.offset
  return Effect.map(env.driver.queryAttrs(start, end), (pieces) => {
    const clipped = pieces.map((p) => ({ start: Math.max(p.start, start), end: Math.min(p.end, end), attrs: p.attrs }))
    const bad = mismatch(clipped, step.ranges, base)
    if (bad !== undefined) fail(env, where, bad)
  })
}
