/**
 * Trace export for `gpusvm simulate` (design.md §7, scenarios.md CLI contract):
 *
 * - `--otlp URL`: the driver's spans (`gpusvm.fault`, `gpusvm.gc`,
 *   `gpusvm.invalidate`, `gpusvm.migrate`, …) under one `gpusvm.simulate`
 *   root span, exported over OTLP/HTTP JSON to URL (a collector's traces
 *   endpoint, e.g. `http://localhost:4318/v1/traces`) by effect's built-in
 *   `OtlpTracer` on `NodeHttpClient`;
 * - `--trace FILE`: the same OTLP JSON (`TracesData`: `resourceSpans` →
 *   `scopeSpans` → `spans`) written to FILE when the run ends.
 *
 * Both may be given. With neither, no tracer is installed and the spans are
 * skipped (`programs/Spans.ts`). Exports are batched and flushed when the
 * command ends (at most `shutdownTimeout` spent on an unreachable collector;
 * an export failure never fails the run).
 *
 * @since 0.1.0
 */
import { NodeHttpClient } from "@effect/platform-node"
import { writeFileSync } from "node:fs"
import { Data, Effect, Layer, Option } from "effect"
import { HttpClient, HttpClientResponse } from "effect/http"
import { type OtlpExporter, OtlpSerialization, OtlpTracer } from "effect/observability"
import { VERSION } from "../index.ts"

/**
 * The trace flags of `gpusvm simulate`.
 *
 * @category models
 * @since 0.1.0
 */
export interface TraceFlags {
  /** `--otlp URL`: OTLP/HTTP traces endpoint. */
  readonly otlp: Option.Option<string>
  /** `--trace FILE`: where to write the OTLP JSON. */
  readonly trace: Option.Option<string>
}

/**
 * Bad trace flags (a URL that does not parse, a file that cannot be
 * written): the CLI reports it as bad input (exit 2) before running anything.
 *
 * @category errors
 * @since 0.1.0
 */
export class TraceFlagError extends Data.TaggedError("TraceFlagError")<{ readonly message: string }> {}

/** Merges the OTLP JSON batches posted during the run into one `TracesData`. */
const merge = (batches: ReadonlyArray<string>): unknown => {
  type Batch = { resourceSpans: Array<{ resource: unknown; scopeSpans: Array<{ scope: unknown; spans: Array<unknown> }> }> }
  let resource: unknown
  let scope: unknown
  const spans: Array<unknown> = []
  for (const text of batches) {
    for (const rs of (JSON.parse(text) as Batch).resourceSpans) {
      resource ??= rs.resource
      for (const ss of rs.scopeSpans) {
        scope ??= ss.scope
        spans.push(...ss.spans)
      }
    }
  }
  return { resourceSpans: resource === undefined ? [] : [{ resource, scopeSpans: [{ scope, spans }] }] }
}

/**
 * An `HttpClient` that keeps a copy of every OTLP body posted through it and
 * writes them, merged, to `file` when its scope closes (after the tracer's
 * final flush: the tracer is built on it, so its finalizer runs first). It
 * forwards each request to `forward` (for `--otlp`), or answers 200 itself.
 */
const recorder = (file: string, forward: Option.Option<HttpClient.HttpClient>) =>
  Effect.gen(function*() {
    const batches: Array<string> = []
    yield* Effect.addFinalizer(() => Effect.sync(() => writeFileSync(file, JSON.stringify(merge(batches)))))
    return HttpClient.make((request) => {
      const body = request.body
      if (body._tag === "Uint8Array") batches.push(new TextDecoder().decode(body.body))
      return Option.isSome(forward)
        ? forward.value.execute(request)
        : Effect.succeed(HttpClientResponse.fromWeb(request, new Response(null, { status: 200 })))
    })
  })

/** The client the tracer posts through: undici (`--otlp`), the recorder (`--trace`), or both. */
const client = (otlp: boolean, file: string | undefined): Layer.Layer<HttpClient.HttpClient> => {
  if (file === undefined) return NodeHttpClient.layerUndici
  if (!otlp) return Layer.effect(HttpClient.HttpClient)(recorder(file, Option.none()))
  return Layer.effect(HttpClient.HttpClient)(
    Effect.gen(function*() {
      const next = yield* HttpClient.HttpClient
      return yield* recorder(file, Option.some(next))
    })
  ).pipe(Layer.provide(NodeHttpClient.layerUndici))
}

/**
 * The tracer layer for `flags` (undefined: no trace flag): effect's `OtlpTracer` with JSON
 * serialisation, posting to `--otlp` (undici) and/or recording into `--trace`.
 * Fails with `TraceFlagError` for a URL that does not parse or a file that
 * cannot be created (checked up front by creating it empty).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (flags: TraceFlags): Effect.Effect<Layer.Layer<OtlpExporter.Flusher> | undefined, TraceFlagError> =>
  Effect.gen(function*() {
    if (Option.isNone(flags.otlp) && Option.isNone(flags.trace)) return undefined
    if (Option.isSome(flags.otlp) && !URL.canParse(flags.otlp.value)) {
      return yield* new TraceFlagError({ message: `--otlp: not a URL: "${flags.otlp.value}"` })
    }
    if (Option.isSome(flags.trace)) {
      const file = flags.trace.value
      yield* Effect.try({
        try: () => writeFileSync(file, ""),
        catch: (e) => new TraceFlagError({ message: `--trace: cannot write ${file}: ${e instanceof Error ? e.message : String(e)}` })
      })
    }
    const url = Option.getOrElse(flags.otlp, () => "http://localhost/v1/traces")
    const tracer = OtlpTracer.layer({
      url,
      resource: { serviceName: "gpusvm", serviceVersion: VERSION },
      shutdownTimeout: "3 seconds"
    }).pipe(Layer.provide(OtlpSerialization.layerJson))
    const http = client(Option.isSome(flags.otlp), Option.getOrUndefined(flags.trace))
    return tracer.pipe(Layer.provide(http))
  })

/**
 * Runs `self` (a `gpusvm simulate` run) inside a `gpusvm.simulate` root span
 * with the tracer of `flags` installed; without trace flags, `self` as it is.
 * A bad flag is `TraceFlagError` (nothing run).
 *
 * @category combinators
 * @since 0.1.0
 */
export const traced = <A, E, R>(flags: TraceFlags, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | TraceFlagError, R> =>
  Effect.flatMap(layer(flags), (l) => (l === undefined ? self : self.pipe(Effect.withSpan("gpusvm.simulate"), Effect.provide(l))))
