/**
 * The explorer hook for tests: {@link explore} runs `Explore.check` on a
 * program (each schedule on a fresh stack when `layer` is given) and, when a
 * schedule violates something, fails with `ExploreFailed` whose message is the
 * counterexample: the violation, the minimal trace and the schedule string to
 * replay it with. Inside `it.effect` the test then fails with that report.
 *
 * @since 0.2.0
 */
import { Effect, type Layer, Schema } from "effect"
import { formatTrace } from "../explore/TraceText.ts"
import type { InvalidSchedule } from "../domain/ScheduleString.ts"
import { type CheckOptions, type CheckResult, Explore, type InvalidExploreOptions } from "../explore/Explore.ts"

/**
 * Options of {@link explore}: the explorer's own (`strategy`, `preemptions`,
 * `budget`, `seed`, …; default DFS with at most 2 preemptions) and the layer
 * each schedule's run gets.
 *
 * @category options
 * @since 0.2.0
 */
export interface ExploreOptions<R = never> extends CheckOptions {
  /**
   * Provided to the program on every schedule (built fresh for each run, so
   * runs never see each other's machine): e.g. `GpuSvmTest.layer({ policy: "xe" })`.
   * Its construction errors count as the run's failure.
   */
  readonly layer?: Layer.Layer<R, unknown>
}

/**
 * `explore` found a schedule that violates something: `kind` (`failure`,
 * `defect`, `deadlock`, `livelock`, `uncontrolled`, …) and `detail` as the
 * explorer reports them, `schedule` the (shrunk) schedule string to replay
 * (`strategy: "replay"`), `trace` the minimal trace as text lines.
 *
 * @category errors
 * @since 0.2.0
 */
export class ExploreFailed extends Schema.TaggedError<ExploreFailed>()("ExploreFailed", {
  kind: Schema.String,
  detail: Schema.String,
  schedule: Schema.String,
  preemptions: Schema.Number,
  schedules: Schema.Number,
  trace: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return [
      `explored ${this.schedules} schedule(s): ${this.kind}: ${this.detail}`,
      `minimal trace (${this.preemptions} preemption${this.preemptions === 1 ? "" : "s"}):`,
      ...this.trace,
      `schedule: ${this.schedule}`,
      `replay with explore(program, { strategy: "replay", schedule: ${JSON.stringify(this.schedule)} })`
    ].join("\n")
  }
}

/**
 * Explores the schedules of `program` (`Explore.check`) and fails with
 * `ExploreFailed` (the counterexample's schedule and trace) when one
 * violates something; succeeds with the check's result otherwise (e.g. to
 * assert `complete` or a number of schedules). The program runs once per
 * schedule from scratch: create its state inside it, and give the stack as
 * `options.layer` rather than providing it outside. Usable inside `it.effect`
 * (the runs use the explorer's own scheduler and clock). Errors also: bad
 * options (`InvalidExploreOptions`) or an unparsable replay schedule
 * (`InvalidSchedule`).
 *
 * @category explore
 * @since 0.2.0
 */
export function explore<A>(
  program: Effect.Effect<A, unknown>,
  options?: CheckOptions
): Effect.Effect<CheckResult, ExploreFailed | InvalidExploreOptions | InvalidSchedule>
export function explore<A, R>(
  program: Effect.Effect<A, unknown, R>,
  options: ExploreOptions<R> & { readonly layer: Layer.Layer<R, unknown> }
): Effect.Effect<CheckResult, ExploreFailed | InvalidExploreOptions | InvalidSchedule>
export function explore<A, R>(
  program: Effect.Effect<A, unknown, R>,
  options: ExploreOptions<R> = {}
): Effect.Effect<CheckResult, ExploreFailed | InvalidExploreOptions | InvalidSchedule> {
  const { layer, ...check } = options
  const target = (layer === undefined ? program : Effect.provide(program, layer)) as Effect.Effect<A, unknown>
  return Effect.flatMap(Explore.check(target, check), (r) => {
    const v = r.violation
    if (v === undefined) return Effect.succeed(r)
    return Effect.fail(
      new ExploreFailed({
        kind: v.kind,
        detail: v.detail,
        schedule: v.schedule,
        preemptions: v.preemptions,
        schedules: r.schedules,
        trace: formatTrace(v)
      })
    )
  })
}
